#!/bin/sh
# Creates (or brings up to date) Temporal's two PostgreSQL databases with
# temporal-sql-tool: `temporal` and `temporal_visibility`. Idempotent: on an
# existing database it only applies the versioned updates that are missing.
# Runs in the temporalio/admin-tools image (docker-compose.yml) and, with the
# tool built from the Go module, in scripts/cluster.sh.
#
#   POSTGRES_SEEDS  host [postgresql]    DB_PORT  port [5432]
#   POSTGRES_USER   user [temporal]      POSTGRES_PWD  password [empty]
#   SCHEMA_DIR      [/etc/temporal/schema/postgresql/v12]
#   SQL_TOOL        [temporal-sql-tool]
set -eu
host="${POSTGRES_SEEDS:-postgresql}"
port="${DB_PORT:-5432}"
schema_dir="${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"
tool="${SQL_TOOL:-temporal-sql-tool}"
export SQL_PASSWORD="${POSTGRES_PWD:-}"

for db in temporal temporal_visibility; do
  dir=temporal
  [ "$db" = temporal_visibility ] && dir=visibility
  [ -d "$schema_dir/$dir/versioned" ] || { echo "temporal-schema: no $schema_dir/$dir/versioned" >&2; exit 1; }
  "$tool" --plugin postgres12 --endpoint "$host" --port "$port" --user "${POSTGRES_USER:-temporal}" --db "$db" create-database
  "$tool" --plugin postgres12 --endpoint "$host" --port "$port" --user "${POSTGRES_USER:-temporal}" --db "$db" setup-schema -v 0.0
  "$tool" --plugin postgres12 --endpoint "$host" --port "$port" --user "${POSTGRES_USER:-temporal}" --db "$db" update-schema -d "$schema_dir/$dir/versioned"
done
echo "temporal-schema: temporal and temporal_visibility are at the latest schema version" >&2
