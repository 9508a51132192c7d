-- Columns for the fields the current forms of the Drishti app send that the
-- original tables lack (13 of the 32 forms gained fields after the original
-- migrator's changesets were written). Without them these fields would land
-- in unmapped_field on every submission that fills them. Types: the type
-- the original gave the same column in its other tables (decimal for
-- number_of_pregnancies, parity, ...), else date for a date question,
-- decimal for an int or decimal question, text for the rest (text rather
-- than varchar(255): a limit would only turn long answers into failures).

ALTER TABLE anc_close
    ADD COLUMN ec_id text;

ALTER TABLE anc_registration
    ADD COLUMN would_be_high_risk        text,
    ADD COLUMN would_be_high_risk_reason text;

ALTER TABLE anc_registration_oa
    ADD COLUMN district               text,
    ADD COLUMN number_of_abortions    decimal,
    ADD COLUMN number_of_live_births  decimal,
    ADD COLUMN number_of_pregnancies  decimal,
    ADD COLUMN number_of_still_births decimal,
    ADD COLUMN parity                 decimal;

ALTER TABLE anc_visit
    ADD COLUMN anaemic_status        text,
    ADD COLUMN convulsions           text,
    ADD COLUMN previous_bp_diastolic text,
    ADD COLUMN previous_bp_systolic  text;

ALTER TABLE child_close
    ADD COLUMN ec_id     text,
    ADD COLUMN mother_id text;

ALTER TABLE child_registration_ec
    ADD COLUMN birth_weight        decimal,
    ADD COLUMN je2_date            date,
    ADD COLUMN should_close_mother text;

ALTER TABLE child_registration_oa
    ADD COLUMN district            text,
    ADD COLUMN dptbooster1_date    date,
    ADD COLUMN dptbooster2_date    date,
    ADD COLUMN measlesbooster_date date,
    ADD COLUMN opvbooster_date     date;

ALTER TABLE ec_edit
    ADD COLUMN parity decimal;

ALTER TABLE ec_registration
    ADD COLUMN district                  text,
    ADD COLUMN would_be_high_risk        text,
    ADD COLUMN would_be_high_risk_reason text;

ALTER TABLE hb_test
    ADD COLUMN high_risk_till_delivery_reason  text,
    ADD COLUMN high_risk_till_pnc_close_reason text,
    ADD COLUMN jaundice                        text,
    ADD COLUMN mal_presentation                text,
    ADD COLUMN multiple_pregnancy              text,
    ADD COLUMN pih                             text,
    ADD COLUMN previous_anaemic_status         text;

ALTER TABLE pnc_close
    ADD COLUMN did_woman_survive text;

ALTER TABLE pnc_registration_oa
    ADD COLUMN district text;

ALTER TABLE postpartum_family_planning
    ADD COLUMN thayi_card_number text;
