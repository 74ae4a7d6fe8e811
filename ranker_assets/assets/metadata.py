"""Standard Dagster metadata for Delta-backed assets: row counts and column schemas in the UI."""

import dagster as dg
import pyarrow as pa

from ranker_assets.lake import Lake


def table_metadata(lake: Lake, table: str, rows: int) -> dict[str, object]:
    """`dagster/row_count` and `dagster/column_schema` of a partition just written to `table`."""
    schema = pa.schema(lake.table(table).schema().to_arrow())
    columns = [dg.TableColumn(f.name, str(f.type)) for f in schema]
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "dagster/uri": lake.uri(table),
    }
