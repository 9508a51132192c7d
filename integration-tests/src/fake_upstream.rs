//! A Drishti-compatible upstream for tests, the demo and the benchmark:
//! `GET /all-form-submissions?timestamp=T&batch-size=N` answers like the real
//! server (the elements with `serverVersion > T`, ascending, at most N, every
//! value a string, `formInstance` a JSON-encoded string), behind HTTP Basic
//! auth, and misbehaves on request: error statuses, 429 with `Retry-After`,
//! hangs, truncated or non-JSON bodies, a page served twice.
//!
//! Its data is either a list of elements (the sample page) or N generated
//! submissions computed on demand from their index, so a backlog of
//! hundreds of thousands costs no memory.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The path the real server serves.
pub const PATH: &str = "/all-form-submissions";

/// The sample page shipped with the project.
pub fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/drishti/sample-batch.json")
}

/// The sample page, compiled in, so the `fake-upstream` binary can serve it
/// where the source tree is absent (in a container).
pub const SAMPLE_PAGE: &str = include_str!("../fixtures/drishti/sample-batch.json");

/// The elements of a JSON array file, each with its `serverVersion`.
pub fn load_elements(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_elements(&text, &path.display().to_string())
}

/// The elements of the compiled-in sample page.
pub fn sample_elements() -> Result<Vec<Value>, String> {
    parse_elements(SAMPLE_PAGE, "the sample page")
}

fn parse_elements(text: &str, origin: &str) -> Result<Vec<Value>, String> {
    match serde_json::from_str(text).map_err(|e| format!("{origin}: {e}"))? {
        Value::Array(items) => Ok(items),
        _ => Err(format!("{origin} is not a JSON array")),
    }
}

/// `generator`'s submissions with the sample page's quirks mixed in: after
/// every `every`-th submission comes a copy of the next element of the
/// sample page (cycling through it), with an instance id of its own and the
/// `serverVersion` of the submission before it. The sample's odd values are
/// written, and its failing elements (an unknown form, a word in a numeric
/// field, a `formInstance` that is not JSON) land in `error_audit`.
pub fn with_sample_quirks(generator: &Generator, every: usize) -> Result<Vec<Value>, String> {
    let sample = sample_elements()?;
    let every = every.max(1);
    let mut elements = Vec::with_capacity(generator.count + generator.count / every);
    let mut quirks = 0usize;
    for i in 0..generator.count {
        elements.push(generator.element(i));
        if (i + 1) % every == 0 {
            let mut quirk = sample[quirks % sample.len()].clone();
            if let Value::Object(fields) = &mut quirk {
                fields.insert(
                    "instanceId".into(),
                    Value::String(format!(
                        "{:08x}-0000-4000-9000-{quirks:012}",
                        generator.seed
                    )),
                );
                fields.insert(
                    "serverVersion".into(),
                    Value::String(generator.server_version(i).to_string()),
                );
            }
            elements.push(quirk);
            quirks += 1;
        }
    }
    Ok(elements)
}

/// How many of [`with_sample_quirks`]'s elements fail (the sample page's
/// three failing elements, wherever the cycle brings them in).
pub fn failing_quirks(generator: &Generator, every: usize) -> Result<usize, String> {
    let sample = sample_elements()?;
    let quirks = generator.count / every.max(1);
    Ok((0..quirks)
        .filter(|q| SAMPLE_FAILING.contains(&(q % sample.len())))
        .count())
}

/// The positions of the sample page's elements that fail (see
/// `fixtures/drishti/README.md`).
pub const SAMPLE_FAILING: [usize; 3] = [4, 5, 6];

fn server_version(element: &Value) -> i64 {
    element
        .get("serverVersion")
        .and_then(|v| match v {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        })
        .unwrap_or(0)
}

/// N submissions made up from their index: four forms in turn
/// (`ec_registration`, `anc_registration`, `anc_visit`, and `pnc_visit` with
/// two `child_pnc_visit` rows), `per_version` of them sharing each
/// `serverVersion` from `base` on.
#[derive(Debug, Clone, Copy)]
pub struct Generator {
    pub count: usize,
    pub base: i64,
    pub per_version: usize,
    /// Makes the instance ids of two generators differ.
    pub seed: u32,
}

impl Generator {
    pub fn new(count: usize) -> Self {
        Self {
            count,
            base: 1_500_000_000_000,
            per_version: 1,
            seed: 0,
        }
    }

    pub fn server_version(&self, i: usize) -> i64 {
        self.base + (i / self.per_version.max(1)) as i64
    }

    /// The index of the first submission with `serverVersion > t`.
    pub fn first_after(&self, t: i64) -> usize {
        if t < self.base {
            return 0;
        }
        let versions = (t - self.base + 1) as usize;
        versions
            .saturating_mul(self.per_version.max(1))
            .min(self.count)
    }

    pub fn instance_id(&self, i: usize) -> String {
        format!("{:08x}-0000-4000-8000-{i:012}", self.seed)
    }

    /// The form of submission `i`.
    pub fn form_name(i: usize) -> &'static str {
        [
            "ec_registration",
            "anc_registration",
            "anc_visit",
            "pnc_visit",
        ][i % 4]
    }

    /// Submission `i` as the upstream sends it.
    pub fn element(&self, i: usize) -> Value {
        let sv = self.server_version(i);
        let entity = format!("10000000-0000-4000-8000-{:012}", i / 4);
        let day = |d: usize| {
            let date = chrono::NaiveDate::from_ymd_opt(2014, 1, 1).unwrap_or_default()
                + chrono::Days::new((d % 700) as u64);
            date.format("%Y-%m-%d").to_string()
        };
        let f = |name: &str, value: String| json!({"name": name, "source": format!("x.{name}"), "value": value});
        let (bind_type, fields, sub_forms) = match i % 4 {
            0 => (
                "eligible_couple",
                vec![
                    f("id", entity.clone()),
                    f("wifeName", format!("Wife {i}")),
                    f("husbandName", format!("Husband {i}")),
                    f("wifeAge", format!("{}", 18 + i % 25)),
                    f("numberOfLivingChildren", format!("{}", i % 5)),
                    f("registrationDate", day(i)),
                    f("familyPlanningMethod", "condom".to_string()),
                ],
                json!([]),
            ),
            1 => (
                "mother",
                vec![
                    f("id", entity.clone()),
                    f("ecId", entity.clone()),
                    f("lmp", day(i)),
                    f("edd", day(i + 280)),
                    f(
                        "isHighRisk",
                        if i.is_multiple_of(3) { "yes" } else { "no" }.to_string(),
                    ),
                    f("weight", format!("{}.{}", 40 + i % 30, i % 10)),
                    f("height", format!("{}.", 140 + i % 30)),
                ],
                json!([]),
            ),
            2 => (
                "mother",
                vec![
                    f("id", entity.clone()),
                    f("ancVisitNumber", format!("{}", 1 + i % 4)),
                    f("ancVisitDate", day(i)),
                    f("bpSystolic", format!("{}", 100 + i % 40)),
                    f("bpDiastolic", format!("{}", 60 + i % 30)),
                    f("hbLevel", format!("{}.{}", 9 + i % 5, i % 10)),
                    f("nextVisitDate", day(i + 30)),
                ],
                json!([]),
            ),
            _ => (
                "mother",
                vec![
                    f("id", entity.clone()),
                    f("dischargeDate", day(i)),
                    f("visitDate", day(i + 2)),
                    f("deliveryOutcome", "live_birth".to_string()),
                ],
                json!([{
                    "name": "child_pnc_visit",
                    "bind_type": "child",
                    "default_bind_path": "/model/instance/PNC_Visit/pnc_child_repeat/",
                    "fields": [{"name": "id", "source": "child.id"}, {"name": "weight", "source": "child.weight"}],
                    "instances": [
                        {"id": format!("20000000-0000-4000-8000-{:012}", 2 * i), "weight": "2.9", "temperature": "99.1", "gender": "female"},
                        {"id": format!("20000000-0000-4000-8000-{:012}", 2 * i + 1), "weight": "3", "temperature": "98.6", "gender": "male"},
                    ],
                }]),
            ),
        };
        let form_instance = json!({
            "form_data_definition_version": "1",
            "form": {
                "bind_type": bind_type,
                "default_bind_path": "/model/instance/Form/",
                "fields": fields,
                "sub_forms": sub_forms,
            }
        });
        json!({
            "anmId": format!("anm{:03}", i % 50),
            "instanceId": self.instance_id(i),
            "entityId": entity,
            "formName": Self::form_name(i),
            "formInstance": form_instance.to_string(),
            "clientVersion": (sv - 60_000).to_string(),
            "serverVersion": sv.to_string(),
            "formDataDefinitionVersion": "1",
        })
    }
}

/// What the fake serves.
#[derive(Debug, Clone)]
pub enum Data {
    /// These elements, in `serverVersion` order.
    Elements(Vec<Value>),
    Generated(Generator),
    /// Elements as exact text (hostile ones need not be valid JSON), each
    /// served on the pages where its `position` is the `serverVersion`.
    Raw(Vec<RawElement>),
}

/// One element as text, paged as if its `serverVersion` were `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawElement {
    pub position: i64,
    pub text: String,
}

/// A misbehaviour, applied to one request (queued) or to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Behave (a placeholder in a queue of faults).
    Pass,
    /// Answer with this status and a short body.
    Status(u16),
    /// Answer with this status and `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// Wait this long, then answer normally (the client should time out first).
    Hang(Duration),
    /// Send the first half of the page's body.
    Truncated,
    /// Send a 200 whose body is not JSON.
    NotJson,
    /// Send the previous response's body again, whatever was asked.
    RepeatLastPage,
    /// A stale page, as a cache or a retrying proxy serves one: the previous
    /// response's body again when it answered the same batch size at the
    /// same or an earlier timestamp (so it overlaps what is asked, never
    /// skips past it), else the page asked for.
    StalePage,
    /// The page from `n` serverVersions before the timestamp asked for:
    /// it overlaps pages already served.
    Overlap(i64),
    /// Start the page, then drop the connection mid-body.
    CutConnection,
    /// Send exactly these bytes as a 200 (for bodies that are not UTF-8).
    Body(Vec<u8>),
    /// A 200 of this many bytes, streamed in 64 KiB chunks made on the fly
    /// (no length announced, nothing held in memory): a runaway page.
    Huge(usize),
}

impl Fault {
    /// A short name for counting injected faults.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Status(_) => "HTTP 5xx",
            Fault::RetryAfter(..) => "429 with Retry-After",
            Fault::Hang(_) => "hang past the request timeout",
            Fault::Truncated => "truncated body",
            Fault::NotJson => "body not JSON",
            Fault::RepeatLastPage | Fault::StalePage => "page served twice",
            Fault::Overlap(_) => "overlapping page",
            Fault::CutConnection => "connection cut mid-body",
            Fault::Body(_) => "fixed body",
            Fault::Huge(_) => "huge body",
        }
    }
}

/// A seeded mix of faults applied to requests that have no queued fault:
/// each request misbehaves with probability `rate`, the kind drawn from
/// `kinds` (with the given hang and `Retry-After`).
#[derive(Debug, Clone)]
pub struct Chaos {
    pub seed: u64,
    pub rate: f64,
    pub kinds: Vec<Fault>,
}

impl Chaos {
    /// Every kind: 500/502/503, a hang of `hang`, 429 with `Retry-After:
    /// retry_after` seconds, a truncated body, a body that is not JSON, a
    /// cut connection, the same page twice, a page overlapping earlier ones
    /// by `overlap` serverVersions.
    pub fn every_kind(
        seed: u64,
        rate: f64,
        hang: Duration,
        retry_after: u64,
        overlap: i64,
    ) -> Self {
        Self {
            seed,
            rate,
            kinds: vec![
                Fault::Status(500),
                Fault::Status(502),
                Fault::Status(503),
                Fault::Hang(hang),
                Fault::RetryAfter(429, retry_after),
                Fault::Truncated,
                Fault::NotJson,
                Fault::CutConnection,
                Fault::StalePage,
                Fault::Overlap(overlap),
            ],
        }
    }
}

struct ChaosState {
    chaos: Chaos,
    rng: rand::rngs::StdRng,
}

impl ChaosState {
    fn draw(&mut self) -> Option<Fault> {
        use rand::RngExt;
        if self.chaos.kinds.is_empty() || !self.rng.random_bool(self.chaos.rate.clamp(0.0, 1.0)) {
            return None;
        }
        let i = self.rng.random_range(0..self.chaos.kinds.len());
        Some(self.chaos.kinds[i].clone())
    }
}

struct Inner {
    data: Data,
    credentials: Option<(String, String)>,
    queued: VecDeque<Fault>,
    always: Option<Fault>,
    last_body: Option<String>,
    /// `(timestamp, batch-size)` the last body answered.
    last_request: Option<(i64, usize)>,
    requests: Vec<(i64, usize)>,
    queries: Vec<String>,
    arrivals: Vec<std::time::Instant>,
    chaos: Option<ChaosState>,
    injected: BTreeMap<&'static str, usize>,
}

struct Shared {
    inner: Mutex<Inner>,
    count: AtomicUsize,
}

/// A running fake upstream; stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl FakeUpstream {
    /// Serves `data` on a free loopback port.
    pub async fn start(data: Data) -> Self {
        Self::start_on("127.0.0.1:0", data)
            .await
            .unwrap_or_else(|e| panic!("fake upstream: {e}"))
    }

    /// Serves the sample page.
    pub async fn sample() -> Self {
        let elements = sample_elements().unwrap_or_else(|e| panic!("{e}"));
        Self::start(Data::Elements(elements)).await
    }

    /// Serves `data` on `listen`.
    pub async fn start_on(listen: &str, data: Data) -> Result<Self, String> {
        let data = sorted(data);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                data,
                credentials: None,
                queued: VecDeque::new(),
                always: None,
                last_body: None,
                last_request: None,
                requests: Vec::new(),
                queries: Vec::new(),
                arrivals: Vec::new(),
                chaos: None,
                injected: BTreeMap::new(),
            }),
            count: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = Router::new()
            .route(PATH, get(handle))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
        });
        Ok(Self { addr, shared, stop })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }

    /// The URL to configure as a source's `url`.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// Requires HTTP Basic auth with these credentials.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        self.with(|i| i.credentials = Some((user.to_string(), password.to_string())));
    }

    /// Queues faults, one per coming request, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.with(|i| i.queued.extend(faults));
    }

    /// Applies `fault` to every request until cleared with `None`.
    pub fn fail_always(&self, fault: Option<Fault>) {
        self.with(|i| i.always = fault);
    }

    /// Replaces what is served (new submissions arriving upstream).
    pub fn set_data(&self, data: Data) {
        let data = sorted(data);
        self.with(|i| i.data = data);
    }

    /// Misbehaves at random (seeded) on requests with no queued fault, or
    /// stops misbehaving with `None`.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        use rand::SeedableRng;
        self.with(|i| {
            i.chaos = chaos.map(|chaos| ChaosState {
                rng: rand::rngs::StdRng::seed_from_u64(chaos.seed),
                chaos,
            })
        });
    }

    /// How many faults of each kind were injected so far (queued, always
    /// and chaos faults alike; `Pass` is not counted).
    pub fn injected(&self) -> BTreeMap<&'static str, usize> {
        self.with(|i| i.injected.clone())
    }

    /// Adds elements to a list (keeps it sorted).
    pub fn push_elements(&self, elements: impl IntoIterator<Item = Value>) {
        self.with(|i| {
            if let Data::Elements(list) = &mut i.data {
                list.extend(elements);
                list.sort_by_key(server_version);
            }
        });
    }

    /// Requests received so far (every one, faults and refusals included).
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// When each request arrived.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.with(|i| i.arrivals.clone())
    }

    /// `(timestamp, batch-size)` of every well-formed request so far.
    pub fn requests(&self) -> Vec<(i64, usize)> {
        self.with(|i| i.requests.clone())
    }

    /// The query string of every request so far, as received.
    pub fn queries(&self) -> Vec<String> {
        self.with(|i| i.queries.clone())
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn authorized(expected: &Option<(String, String)>, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let Some((user, password)) = expected else {
        return true;
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|s| s == format!("{user}:{password}"))
}

/// The data with its elements in `serverVersion` order.
fn sorted(data: Data) -> Data {
    match data {
        Data::Elements(mut e) => {
            e.sort_by_key(server_version);
            Data::Elements(e)
        }
        Data::Raw(mut e) => {
            e.sort_by_key(|r| r.position);
            Data::Raw(e)
        }
        g => g,
    }
}

fn page_body(data: &Data, t: i64, n: usize) -> String {
    let mut body = String::from("[");
    let mut push = |element: String| {
        if body.len() > 1 {
            body.push(',');
        }
        body.push_str(&element);
    };
    match data {
        Data::Elements(list) => {
            // Sorted: the first element after `t` by binary search.
            let start = list.partition_point(|e| server_version(e) <= t);
            for e in list[start..].iter().take(n) {
                push(e.to_string());
            }
        }
        Data::Raw(list) => {
            let start = list.partition_point(|e| e.position <= t);
            for e in list[start..].iter().take(n) {
                push(e.text.clone());
            }
        }
        Data::Generated(g) => {
            let start = g.first_after(t);
            for i in start..(start + n).min(g.count) {
                push(g.element(i).to_string());
            }
        }
    }
    body.push(']');
    body
}

fn json_response(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The first value of each query parameter, as the real server (Spring
/// 3.1's `@RequestParam`) takes it when a parameter is repeated.
fn first_values(query: &str) -> HashMap<String, String> {
    let mut first = HashMap::new();
    let Ok(url) = reqwest::Url::parse(&format!("http://fake/?{query}")) else {
        return first;
    };
    for (k, v) in url.query_pairs() {
        first
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    first
}

/// A 200 of `size` bytes (`[` and spaces), streamed in chunks made on the fly.
fn huge_response(size: usize) -> Response {
    const CHUNK: usize = 64 * 1024;
    let chunks = (0..size.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(size - i * CHUNK);
        let mut chunk = vec![b' '; len];
        if i == 0 {
            chunk[0] = b'[';
        }
        Ok::<bytes::Bytes, std::io::Error>(bytes::Bytes::from(chunk))
    });
    let mut r = Response::new(axum::body::Body::from_stream(futures::stream::iter(chunks)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    shared.count.fetch_add(1, Ordering::SeqCst);
    let raw_query = raw_query.unwrap_or_default();
    let query = first_values(&raw_query);
    let (credentials, fault) = {
        let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.arrivals.push(std::time::Instant::now());
        inner.queries.push(raw_query);
        let fault = match inner.queued.pop_front().or_else(|| inner.always.clone()) {
            Some(f) => Some(f),
            None => inner.chaos.as_mut().and_then(ChaosState::draw),
        };
        if let Some(f) = fault.as_ref().filter(|f| **f != Fault::Pass) {
            *inner.injected.entry(f.kind()).or_default() += 1;
        }
        (inner.credentials.clone(), fault)
    };
    if !authorized(&credentials, &headers) {
        let mut r = (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"drishti\""),
        );
        return r;
    }
    let t = query.get("timestamp").and_then(|v| v.parse::<i64>().ok());
    let n = query
        .get("batch-size")
        .and_then(|v| v.parse::<usize>().ok());
    let (Some(t), Some(n)) = (t, n) else {
        return (
            StatusCode::BAD_REQUEST,
            "timestamp and batch-size are required",
        )
            .into_response();
    };
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "injected failure").into_response();
        }
        Some(Fault::RetryAfter(code, seconds)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let mut r = (status, "slow down").into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return r;
        }
        Some(Fault::Hang(d)) => tokio::time::sleep(d).await,
        Some(Fault::NotJson) => {
            return (StatusCode::OK, "<html><body>502 Bad Gateway</body></html>").into_response();
        }
        Some(Fault::Huge(size)) => return huge_response(size),
        Some(Fault::Body(bytes)) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return r;
        }
        _ => {}
    }
    let body = {
        let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.requests.push((t, n));
        let (body, answered) = match (&fault, &inner.last_body, inner.last_request) {
            (Some(Fault::RepeatLastPage), Some(last), Some(asked)) => (last.clone(), asked),
            (Some(Fault::StalePage), Some(last), Some((t0, n0))) if t0 <= t && n0 == n => {
                (last.clone(), (t0, n0))
            }
            (Some(Fault::Overlap(back)), _, _) => {
                let earlier = t.saturating_sub(*back);
                (page_body(&inner.data, earlier, n), (earlier, n))
            }
            _ => (page_body(&inner.data, t, n), (t, n)),
        };
        inner.last_body = Some(body.clone());
        inner.last_request = Some(answered);
        body
    };
    if fault == Some(Fault::CutConnection) {
        let mut cut = body.len() / 2;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        let first = bytes::Bytes::from(body[..cut].to_string());
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(first),
            Err(std::io::Error::other("connection cut by the fake upstream")),
        ];
        let mut r = Response::new(axum::body::Body::from_stream(futures::stream::iter(chunks)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return r;
    }
    if fault == Some(Fault::Truncated) {
        let mut cut = body.len() / 2;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        return json_response(body[..cut].to_string());
    }
    json_response(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirks_are_mixed_in_with_ids_of_their_own_in_server_version_order() {
        let g = Generator::new(30);
        let elements = with_sample_quirks(&g, 4).expect("sample");
        assert_eq!(elements.len(), 30 + 7);
        let ids: std::collections::HashSet<&str> = elements
            .iter()
            .filter_map(|e| e["instanceId"].as_str())
            .collect();
        assert_eq!(ids.len(), elements.len(), "instance ids are unique");
        let versions: Vec<i64> = elements.iter().map(server_version).collect();
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
        let names: Vec<&str> = elements
            .iter()
            .filter_map(|e| e["formName"].as_str())
            .collect();
        assert!(names.contains(&"ec_edit_v9"), "the unknown form is in");
        assert_eq!(failing_quirks(&g, 4).expect("sample"), 3);
        assert_eq!(failing_quirks(&Generator::new(8), 4).expect("sample"), 0);
    }

    #[test]
    fn generated_pages_follow_server_versions() {
        let g = Generator {
            count: 10,
            base: 100,
            per_version: 3,
            seed: 0,
        };
        assert_eq!(g.server_version(0), 100);
        assert_eq!(g.server_version(3), 101);
        assert_eq!(g.first_after(0), 0);
        assert_eq!(g.first_after(100), 3);
        assert_eq!(g.first_after(102), 9);
        assert_eq!(g.first_after(500), 10);
        let body = page_body(&Data::Generated(g), 100, 4);
        let page: Vec<Value> = serde_json::from_str(&body).expect("json");
        assert_eq!(page.len(), 4);
        assert!(page.iter().all(|e| server_version(e) > 100));
    }
}
