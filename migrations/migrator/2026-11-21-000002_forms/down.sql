DROP TABLE IF EXISTS child_pnc_visit;
DROP TABLE IF EXISTS pnc_visit;
DROP TABLE IF EXISTS anc_visit;
DROP TABLE IF EXISTS anc_registration;
DROP TABLE IF EXISTS ec_registration;
