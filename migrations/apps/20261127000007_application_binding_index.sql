-- Federation's binding events name the binding: find its application by
-- an index on the binding ids (the values of `bindings`), not a scan.
CREATE INDEX applications_binding_ids ON applications USING gin (jsonb_path_query_array(bindings, '$.*'));
