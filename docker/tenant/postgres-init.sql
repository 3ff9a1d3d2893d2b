-- Rendered by portierctl tenant provision; run once by postgres on an empty
-- volume. The "litellm" database comes from POSTGRES_DB; Open WebUI gets its own.
CREATE DATABASE webui OWNER app;
