"""Standard Dagster metadata for Delta-backed assets: row counts and column schemas in the UI."""

import dagster as dg

from ranker_assets.infra.lake import Lake


def table_metadata(lake: Lake, table: str, rows: int) -> dict[str, object]:
    """`dagster/row_count` and `dagster/column_schema` of a partition just written to `table`."""
    columns = [dg.TableColumn(f.name, str(f.type)) for f in lake.schema(table)]
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "dagster/uri": lake.uri(table),
    }


def lineage_metadata(lineage: dict[str, list[tuple[str, str]]]) -> dict[str, object]:
    """`dagster/column_lineage`: the upstream (asset, column) pairs behind each column."""
    return {
        "dagster/column_lineage": dg.TableColumnLineage(
            deps_by_column={
                column: [
                    dg.TableColumnDep(asset_key=dg.AssetKey(a), column_name=c) for a, c in deps
                ]
                for column, deps in lineage.items()
            }
        )
    }
