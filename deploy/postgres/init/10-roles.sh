#!/bin/sh
# Runs once, when the compose stack's PostgreSQL starts on an empty volume
# (docker-entrypoint-initdb.d). The passwords come from the container's environment (.env),
# never from this file:
#   temporal  may create databases: Temporal's auto-setup creates `temporal` and
#             `temporal_visibility` and their schemas;
#   r2c       owns the `r2c` database, the orchestration system's store (POSTGRES_URL).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v temporal_password="$TEMPORAL_DB_PASSWORD" -v r2c_password="$R2C_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE r2c LOGIN PASSWORD :'r2c_password';
CREATE DATABASE r2c OWNER r2c;
SQL
