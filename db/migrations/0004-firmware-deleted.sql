-- 0004: a removed image whose row finished rollouts or rules still name is kept,
-- marked removed, so their history stays readable (the foreign keys RESTRICT).
ALTER TABLE firmware ADD COLUMN deleted_at INTEGER;
