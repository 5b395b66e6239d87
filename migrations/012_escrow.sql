-- Tapeward catalog, schema version 12: escrow envelopes (issue 13 item 2,
-- architecture.md §7 "label … [, key envelope]", §4 invariant 8).
--
--   * A pool may name an escrow public key (director.toml
--     escrow_public_key). Every key the director makes for a volume of such
--     a pool is also sealed to it (Tink HPKE, X25519); the envelope is
--     stored here beside the wrapped key and written into the volume's
--     clear label, so a DR needs only the tapes and the escrow private key.
--   * escrow_envelope is standard base64 of the envelope; escrow_key_id the
--     id of the escrow key it is sealed to. Both NULL, or both set, and only
--     with a key. The envelope does not depend on the KEK: rekey never
--     touches it. A key moving to the key history takes its envelope along
--     (media_keys). Shredding removes the catalog's copies; the copy in the
--     label stays on the tape (shred says so).
ALTER TABLE media ADD COLUMN escrow_key_id text;
ALTER TABLE media ADD COLUMN escrow_envelope text;
ALTER TABLE media ADD CONSTRAINT media_escrow_pair
    CHECK ((escrow_key_id IS NULL) = (escrow_envelope IS NULL)
        AND (escrow_key_id IS NULL OR (escrow_key_id <> '' AND escrow_envelope <> '' AND key_string IS NOT NULL)));
ALTER TABLE media_keys ADD COLUMN escrow_key_id text;
ALTER TABLE media_keys ADD COLUMN escrow_envelope text;
ALTER TABLE media_keys ADD CONSTRAINT media_keys_escrow_pair
    CHECK ((escrow_key_id IS NULL) = (escrow_envelope IS NULL)
        AND (escrow_key_id IS NULL OR (escrow_key_id <> '' AND escrow_envelope <> '')));

---- create above / drop below ----

ALTER TABLE media_keys DROP CONSTRAINT media_keys_escrow_pair;
ALTER TABLE media_keys DROP COLUMN escrow_envelope, DROP COLUMN escrow_key_id;
ALTER TABLE media DROP CONSTRAINT media_escrow_pair;
ALTER TABLE media DROP COLUMN escrow_envelope, DROP COLUMN escrow_key_id;
