"""The data map: the platform's tables, how they hang off a subject, and what to do with them.

One model for the eraser, the exporter, verification and retention (format: docs/datamap.md).
A mistake is refused with an error naming the file, the table and the field: first when the
YAML is loaded (shape, references, kinds, cycles), then at start-up against the live database
(`check_against_database`: tables and columns exist, relations resolve, masks fit the columns).

- `model`: the pydantic model and `load_datamap`;
- `checks`: load-time checks across tables;
- `graph`: scope, order and waves (methods of `DataMap`);
- `live`: what the live database says (`LiveSchema`);
- `live_checks`: `check_against_database`;
- `connectors`: systems outside the platform database (HTTP, OAuth revocation, manual).
"""

from shared.datamap.connectors import (
    Connector,
    HttpConnector,
    ManualConnector,
    OAuthRevocation,
    missing_env,
)
from shared.datamap.live import Column, ForeignKey, LiveSchema, read_live_schema
from shared.datamap.live_checks import check_against_database
from shared.datamap.model import (
    HASHES,
    TEXT_LENGTH,
    TEXT_STRATEGIES,
    Columns,
    DataMap,
    DataMapError,
    Hide,
    Identifier,
    Kind,
    MaskSpec,
    Parent,
    Relation,
    RetentionCategory,
    SubjectMap,
    TableMap,
    cols,
    load_datamap,
    parse_mask,
)

__all__ = [
    "HASHES",
    "TEXT_LENGTH",
    "TEXT_STRATEGIES",
    "Column",
    "Columns",
    "Connector",
    "DataMap",
    "DataMapError",
    "ForeignKey",
    "Hide",
    "HttpConnector",
    "Identifier",
    "Kind",
    "LiveSchema",
    "ManualConnector",
    "MaskSpec",
    "OAuthRevocation",
    "Parent",
    "Relation",
    "RetentionCategory",
    "SubjectMap",
    "TableMap",
    "check_against_database",
    "cols",
    "load_datamap",
    "missing_env",
    "parse_mask",
    "read_live_schema",
]
