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
    """A paginator whose ``count`` is the planner's estimate for the unfiltered table."""

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
        rows = {row.pk: row for row in self.object_list.filter(pk__in=ids).order_by()}
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
