-- Client content is stored as text, exactly as served. A query that reads into it must not cast it with ::jsonb: jsonb
-- refuses what JSON text may hold (\u0000, lone surrogate escapes), and one such event stored by any user made every
-- query that cast it fail for everyone (the user directory, unread counts). client_jsonb is the cast for such reads:
-- NULL for text jsonb cannot hold. Text without escapes cannot hold either, so only that pays for the subtransaction of
-- the exception handler.
CREATE FUNCTION client_jsonb_checked(json text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN json::jsonb;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION client_jsonb(json text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF strpos(json, '\u') = 0 THEN
        RETURN json::jsonb;
    END IF;
    RETURN client_jsonb_checked(json);
END
$$;
