"""Late extracts: when each provider's extract of each dataset is due, and whether it came."""

from borderx.due.periods import Period, describe, period_at, period_before
from borderx.due.status import Expected, check, intakes, record_overdue

__all__ = ["Expected", "Period", "check", "describe", "intakes", "period_at", "period_before", "record_overdue"]
