-- Transaction ids are honoured for a limited time (HomeserverOptions.TransactionIdLifetime, 24 hours by default):
-- the writers' housekeeping deletes older ones by age.
CREATE INDEX event_txn_ids_created_at ON event_txn_ids (created_at);
CREATE INDEX to_device_txns_created_at ON to_device_txns (created_at);
