-- 0003: a serial device's baud rate, and whether its name and labels were set by
-- config or the API (discovery then leaves them alone, whatever the device's source).
ALTER TABLE devices ADD COLUMN baud INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN name_pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN labels_pinned INTEGER NOT NULL DEFAULT 0;
UPDATE devices SET name_pinned = (source <> 'discovered'), labels_pinned = (source <> 'discovered');
