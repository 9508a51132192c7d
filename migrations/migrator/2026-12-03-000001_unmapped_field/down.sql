DROP TABLE unmapped_field;
