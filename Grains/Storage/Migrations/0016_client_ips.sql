-- Where each device's clients connect from (spec: "Server Administration" whois, and last_seen_ip / last_seen_ts of
-- "Device Management"): Synapse's user_ips, keyed by device rather than by access token since a device has one token
-- at a time here. Rows are written in batches every few seconds by each process (ClientIpFlusher), never per
-- request, and go with their device (DevicesDeletedPersister). last_seen is milliseconds since the epoch.
CREATE TABLE client_ips (
    user_id    text   NOT NULL,
    device_id  text   NOT NULL,
    ip         text   NOT NULL,
    user_agent text   NOT NULL,
    last_seen  bigint NOT NULL,
    PRIMARY KEY (user_id, device_id, ip, user_agent)
);
