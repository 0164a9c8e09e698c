-- Run once by the postgres image on an empty volume (compose.yaml mounts it into
-- /docker-entrypoint-initdb.d). The chat keeps its history and graph memory in the database
-- POSTGRES_DB creates (distillgraph); the server keeps its graph memory apart, so the two never
-- race on LangGraph's checkpoint tables.
CREATE DATABASE distillgraph_server OWNER distillgraph;
