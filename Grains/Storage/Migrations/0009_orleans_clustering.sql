-- Cluster membership in PostgreSQL (Microsoft.Orleans.Clustering.AdoNet 10.4.2): every silo and front end finds the
-- others through these tables, so there is no primary silo and no static list. The provider reads its SQL from
-- OrleansQuery by key at start-up and binds parameters by name (@DeploymentId = the cluster id); the table, column,
-- key and parameter names below are its contract. Each membership write is conditional on the version row's
-- version (optimistic concurrency): a write that loses the race changes nothing and answers 0.

CREATE TABLE OrleansQuery (
    QueryKey  varchar(64)   NOT NULL PRIMARY KEY,
    QueryText varchar(8000) NOT NULL
);

CREATE TABLE OrleansMembershipVersionTable (
    DeploymentId varchar(150)   NOT NULL PRIMARY KEY,
    Timestamp    timestamptz(3) NOT NULL DEFAULT now(),
    Version      integer        NOT NULL DEFAULT 0
);

CREATE TABLE OrleansMembershipTable (
    DeploymentId varchar(150)   NOT NULL REFERENCES OrleansMembershipVersionTable (DeploymentId),
    Address      varchar(45)    NOT NULL,
    Port         integer        NOT NULL,
    Generation   integer        NOT NULL,
    SiloName     varchar(150)   NOT NULL,
    HostName     varchar(150)   NOT NULL,
    Status       integer        NOT NULL,
    ProxyPort    integer,
    SuspectTimes varchar(8000),
    StartTime    timestamptz(3) NOT NULL,
    IAmAliveTime timestamptz(3) NOT NULL,
    PRIMARY KEY (DeploymentId, Address, Port, Generation)
);

-- Answers 1 when it created the cluster's version row, 0 when it was there already.
CREATE FUNCTION orleans_insert_membership_version(deployment varchar)
    RETURNS TABLE (row_count integer) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO OrleansMembershipVersionTable (DeploymentId) VALUES (deployment) ON CONFLICT (DeploymentId) DO NOTHING;
    RETURN QUERY SELECT CASE WHEN FOUND THEN 1 ELSE 0 END;
END
$$;

-- Bumps the version when it matches; answers whether it did. The row stays locked until the caller's transaction
-- ends, so the conditional write that follows cannot interleave with another silo's.
CREATE FUNCTION orleans_bump_membership_version(deployment varchar, expected integer)
    RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE OrleansMembershipVersionTable SET Version = Version + 1, Timestamp = now()
     WHERE DeploymentId = deployment AND Version = expected AND Version < 2147483647;
    RETURN FOUND;
END
$$;

-- A new silo's row, only if the version matches and the row is new; otherwise nothing changes.
CREATE FUNCTION orleans_insert_membership(deployment varchar, address_arg varchar, port_arg integer, generation_arg integer,
    silo_name varchar, host_name varchar, status_arg integer, proxy_port integer, start_time timestamptz,
    i_am_alive timestamptz, expected integer)
    RETURNS TABLE (row_count integer) LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        IF NOT orleans_bump_membership_version(deployment, expected) THEN
            RETURN QUERY SELECT 0;
            RETURN;
        END IF;
        INSERT INTO OrleansMembershipTable (DeploymentId, Address, Port, Generation, SiloName, HostName, Status, ProxyPort,
                                            StartTime, IAmAliveTime)
        VALUES (deployment, address_arg, port_arg, generation_arg, silo_name, host_name, status_arg, proxy_port,
                start_time, i_am_alive)
        ON CONFLICT (DeploymentId, Address, Port, Generation) DO NOTHING;
        IF NOT FOUND THEN
            -- Undo the version bump with the rest of this block.
            RAISE EXCEPTION 'membership row exists' USING ERRCODE = 'unique_violation';
        END IF;
        RETURN QUERY SELECT 1;
    EXCEPTION WHEN unique_violation THEN
        RETURN QUERY SELECT 0;
    END;
END
$$;

-- A silo's status and suspicions, only if the version matches and the row exists; otherwise nothing changes.
CREATE FUNCTION orleans_update_membership(deployment varchar, address_arg varchar, port_arg integer, generation_arg integer,
    status_arg integer, suspect_times varchar, i_am_alive timestamptz, expected integer)
    RETURNS TABLE (row_count integer) LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        IF NOT orleans_bump_membership_version(deployment, expected) THEN
            RETURN QUERY SELECT 0;
            RETURN;
        END IF;
        UPDATE OrleansMembershipTable
           SET Status = status_arg, SuspectTimes = suspect_times, IAmAliveTime = GREATEST(IAmAliveTime, i_am_alive)
         WHERE DeploymentId = deployment AND Address = address_arg AND Port = port_arg AND Generation = generation_arg;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such membership row' USING ERRCODE = 'no_data_found';
        END IF;
        RETURN QUERY SELECT 1;
    EXCEPTION WHEN no_data_found THEN
        RETURN QUERY SELECT 0;
    END;
END
$$;

INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('InsertMembershipVersionKey',
 'SELECT row_count FROM orleans_insert_membership_version(@DeploymentId);'),

('InsertMembershipKey',
 'SELECT row_count FROM orleans_insert_membership(@DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName,
      @Status, @ProxyPort, @StartTime, @IAmAliveTime, @Version);'),

('UpdateMembershipKey',
 'SELECT row_count FROM orleans_update_membership(@DeploymentId, @Address, @Port, @Generation, @Status, @SuspectTimes,
      @IAmAliveTime, @Version);'),

-- Never fails as far as Orleans is concerned; a late heartbeat does not move the time back.
('UpdateIAmAlivetimeKey',
 'UPDATE OrleansMembershipTable SET IAmAliveTime = GREATEST(IAmAliveTime, @IAmAliveTime)
   WHERE DeploymentId = @DeploymentId AND Address = @Address AND Port = @Port AND Generation = @Generation;'),

-- The version row always comes back (the provider reads row 0), with the members joined to it, if any.
('MembershipReadAllKey',
 'SELECT v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort,
         m.SuspectTimes, m.StartTime, m.IAmAliveTime, v.Version
    FROM OrleansMembershipVersionTable v
    LEFT JOIN OrleansMembershipTable m ON m.DeploymentId = v.DeploymentId
   WHERE v.DeploymentId = @DeploymentId;'),

('MembershipReadRowKey',
 'SELECT v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort,
         m.SuspectTimes, m.StartTime, m.IAmAliveTime, v.Version
    FROM OrleansMembershipVersionTable v
    LEFT JOIN OrleansMembershipTable m ON m.DeploymentId = v.DeploymentId
         AND m.Address = @Address AND m.Port = @Port AND m.Generation = @Generation
   WHERE v.DeploymentId = @DeploymentId;'),

('DeleteMembershipTableEntriesKey',
 'DELETE FROM OrleansMembershipTable WHERE DeploymentId = @DeploymentId;
  DELETE FROM OrleansMembershipVersionTable WHERE DeploymentId = @DeploymentId;'),

-- Active silos (status 3) with a gateway: where clients (front ends without a silo) connect.
('GatewaysQueryKey',
 'SELECT Address, ProxyPort, Generation FROM OrleansMembershipTable
   WHERE DeploymentId = @DeploymentId AND Status = @Status AND ProxyPort > 0;'),

-- Dead silos (status 6) gone long enough and no longer suspected by anyone.
('CleanupDefunctSiloEntriesKey',
 'DELETE FROM OrleansMembershipTable
   WHERE DeploymentId = @DeploymentId AND Status = 6 AND IAmAliveTime < @IAmAliveTime AND StartTime < @IAmAliveTime
     AND COALESCE(SuspectTimes, '''') = '''';'),

-- One dead silo's row, only if nothing about it changed since it was read.
('CleanupDefunctSiloEntryKey',
 'DELETE FROM OrleansMembershipTable
   WHERE DeploymentId = @DeploymentId AND Status = 6 AND Address = @Address AND Port = @Port
     AND Generation = @Generation AND IAmAliveTime = @IAmAliveTime AND StartTime = @StartTime
     AND COALESCE(SuspectTimes, '''') = COALESCE(@SuspectTimes, '''');');
