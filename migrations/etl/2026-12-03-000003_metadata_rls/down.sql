-- The policies are left: on a database where Avni's tables already had
-- them, they are Avni's, and this cannot tell which it made.
SELECT 1;
