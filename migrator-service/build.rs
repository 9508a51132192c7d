// Rebuild when a migration changes, so the embedded set is never stale.
fn main() {
    println!("cargo:rerun-if-changed=../migrations/migrator");
}
