"""Counting a 100,000-row changelist without ``COUNT(*)`` over the whole table.

The unfiltered supervisor list on PostgreSQL takes its total from the planner's
statistics (``pg_class.reltuples``), a filtered or searched one from the
planner's estimate of that query (``EXPLAIN``, nothing run); the page says the
figure is an estimate. When the planner expects fewer than
``settings.ADMIN_EXACT_COUNT_BELOW`` rows (default 10,000), or on SQLite, the
count is exact: then it is cheap. At a million supervisors an exact count of
"state = working" alone reads a quarter of the table (bench/admin_bench.py).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from supervisors.selectors import estimated_query_rows, estimated_row_count

DEFAULT_EXACT_COUNT_BELOW = 10_000


def estimated_count(queryset: QuerySet) -> int | None:
    """The planner's estimate when ``queryset`` is large; None means count exactly."""
    if queryset.query.where:
        estimate = estimated_query_rows(queryset)
    else:
        estimate = estimated_row_count(queryset.model._meta.db_table)
    threshold = getattr(settings, "ADMIN_EXACT_COUNT_BELOW", DEFAULT_EXACT_COUNT_BELOW)
    if estimate is None or estimate < threshold:
        return None
    return estimate


class EstimatedCountPaginator(Paginator):
    """A paginator whose ``count`` is the planner's estimate for the unfiltered table.

    ``rows``: where a page's rows are read once its ids are known (the admin's
    queryset before filters and search; default: the list itself). The ids
    already carry the list's filters; repeated beside them, a search passed as
    thousands of ids made PostgreSQL misjudge the 50-row read and scan the
    table (87 ms at a million supervisors, bench/admin_bench.py).
    """

    def __init__(
        self, object_list, per_page, orphans=0, allow_empty_first_page=True, error_messages=None, *, rows=None
    ) -> None:
        super().__init__(object_list, per_page, orphans, allow_empty_first_page, error_messages)
        self.rows = rows

    @cached_property
    def count(self) -> int:
        estimate = estimated_count(self.object_list)
        self.is_estimated = estimate is not None
        return estimate if estimate is not None else self.object_list.count()

    is_estimated = False

    def page(self, number):
        """Read the page's ids first (no joins, a narrow sort), then the rows for those ids only.

        With 100,000 supervisors, sorting the joined rows (contract, task) to keep
        50 of them costs several times more than sorting ids and joining 50.
        A page in the far half of the list is read from its end, in the reverse
        order: an offset costs what it skips, and the admin links the last page
        (at a million supervisors, offset 999,950 took 0.8 s; from the end, 2 ms).
        """
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        ids = self._page_ids(bottom, min(self.per_page, max(0, self.count - bottom)))
        source = self.object_list if self.rows is None else self.rows
        rows = {row.pk: row for row in source.filter(pk__in=ids).order_by()}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)

    def _page_ids(self, bottom: int, size: int) -> list:
        """The ids of rows ``bottom .. bottom + size - 1`` in the list's order, from whichever end is nearer.

        From the end when more rows follow the page than precede it. With an
        estimated count the positions are as approximate as the count: the
        last page holds the last rows whatever the estimate.
        """
        after = self.count - bottom - size
        ids = self.object_list.values_list("pk", flat=True)
        if after >= bottom or not self.object_list.ordered:
            return list(ids[bottom : bottom + self.per_page])
        return list(reversed(ids.reverse()[after : after + size]))


class EstimatedCountChangeList(ChangeList):
    """Remembers whether the count shown is an estimate, for the template's note."""

    count_is_estimated = False

    def get_results(self, request) -> None:
        super().get_results(request)
        self.count_is_estimated = getattr(self.paginator, "is_estimated", False)
