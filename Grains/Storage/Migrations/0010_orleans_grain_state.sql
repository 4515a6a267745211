-- Grain state in PostgreSQL (Microsoft.Orleans.Persistence.AdoNet 10.4.2), for grains whose state is a small document
-- rather than a stream: the events shard map first. The provider reads its SQL from OrleansQuery by key and binds
-- parameters by name; the table, column, key and parameter names below are its contract. A grain's row is found by
-- all of (GrainIdHash, GrainIdN0, GrainIdN1, GrainTypeHash, GrainTypeString, GrainIdExtensionString, ServiceId); the
-- integer Version is the ETag, and every write is conditional on it, so two activations of one grain (possible for
-- a moment during failures) cannot both write.

CREATE TABLE OrleansStorage (
    GrainIdHash            integer      NOT NULL,
    GrainIdN0              bigint       NOT NULL,
    GrainIdN1              bigint       NOT NULL,
    GrainTypeHash          integer      NOT NULL,
    GrainTypeString        varchar(512) NOT NULL,
    GrainIdExtensionString varchar(512),
    ServiceId              varchar(150) NOT NULL,
    PayloadBinary          bytea,
    ModifiedOn             timestamptz  NOT NULL DEFAULT now(),
    Version                integer
);

-- The provider relies on its writes to keep one row per grain; this makes the database say so too (a string-keyed
-- grain has no extension, so NULLs must count as equal).
CREATE UNIQUE INDEX orleans_storage_grain ON OrleansStorage
    (GrainIdHash, GrainTypeHash, GrainIdN0, GrainIdN1, GrainTypeString, GrainIdExtensionString, ServiceId) NULLS NOT DISTINCT;

-- A write of a known version replaces the payload and answers the next version (the same version when the row moved
-- on meanwhile: the provider reports the conflict). A first write (no version) inserts version 1, or answers NULL
-- when another activation inserted first.
CREATE FUNCTION orleans_write_to_storage(grain_id_hash integer, grain_id_n0 bigint, grain_id_n1 bigint,
    grain_type_hash integer, grain_type_string varchar, grain_id_extension_string varchar, service_id varchar,
    grain_state_version integer, payload_binary bytea)
    RETURNS TABLE (newgrainstateversion integer) LANGUAGE plpgsql AS $$
DECLARE
    written integer;
BEGIN
    IF grain_state_version IS NOT NULL THEN
        UPDATE OrleansStorage SET PayloadBinary = payload_binary, ModifiedOn = now(), Version = Version + 1
         WHERE GrainIdHash = grain_id_hash AND GrainTypeHash = grain_type_hash
           AND GrainIdN0 = grain_id_n0 AND GrainIdN1 = grain_id_n1 AND GrainTypeString = grain_type_string
           AND GrainIdExtensionString IS NOT DISTINCT FROM grain_id_extension_string AND ServiceId = service_id
           AND Version = grain_state_version
        RETURNING Version INTO written;
        IF NOT FOUND THEN written := grain_state_version; END IF;
    ELSE
        INSERT INTO OrleansStorage (GrainIdHash, GrainIdN0, GrainIdN1, GrainTypeHash, GrainTypeString,
                                    GrainIdExtensionString, ServiceId, PayloadBinary, Version)
        VALUES (grain_id_hash, grain_id_n0, grain_id_n1, grain_type_hash, grain_type_string,
                grain_id_extension_string, service_id, payload_binary, 1)
        ON CONFLICT DO NOTHING;
        IF FOUND THEN written := 1; ELSE written := NULL; END IF;
    END IF;
    RETURN QUERY SELECT written;
END
$$;

INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('ReadFromStorageKey',
 'SELECT PayloadBinary, Version FROM OrleansStorage
   WHERE GrainIdHash = @GrainIdHash AND GrainTypeHash = @GrainTypeHash
     AND GrainIdN0 = @GrainIdN0 AND GrainIdN1 = @GrainIdN1 AND GrainTypeString = @GrainTypeString
     AND GrainIdExtensionString IS NOT DISTINCT FROM CAST(@GrainIdExtensionString AS varchar) AND ServiceId = @ServiceId;'),
('WriteToStorageKey',
 'SELECT newgrainstateversion AS NewGrainStateVersion FROM orleans_write_to_storage(@GrainIdHash, @GrainIdN0, @GrainIdN1,
    @GrainTypeHash, @GrainTypeString, CAST(@GrainIdExtensionString AS varchar), @ServiceId, CAST(@GrainStateVersion AS integer), @PayloadBinary);'),
('ClearStorageKey',
 'UPDATE OrleansStorage SET PayloadBinary = NULL, ModifiedOn = now(), Version = Version + 1
   WHERE GrainIdHash = @GrainIdHash AND GrainTypeHash = @GrainTypeHash
     AND GrainIdN0 = @GrainIdN0 AND GrainIdN1 = @GrainIdN1 AND GrainTypeString = @GrainTypeString
     AND GrainIdExtensionString IS NOT DISTINCT FROM CAST(@GrainIdExtensionString AS varchar) AND ServiceId = @ServiceId
     AND Version = @GrainStateVersion
  RETURNING Version;'),
('DeleteStorageKey',
 'DELETE FROM OrleansStorage
   WHERE GrainIdHash = @GrainIdHash AND GrainTypeHash = @GrainTypeHash
     AND GrainIdN0 = @GrainIdN0 AND GrainIdN1 = @GrainIdN1 AND GrainTypeString = @GrainTypeString
     AND GrainIdExtensionString IS NOT DISTINCT FROM CAST(@GrainIdExtensionString AS varchar) AND ServiceId = @ServiceId
     AND Version = @GrainStateVersion
  RETURNING Version + 1;');
