"""The dispatch log's pages. Interfaces only: parse the request, call a selector or the retry
service, render."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from connectors import delivery
from connectors.models import DispatchStatus

from . import export, present, selectors
from .access import RETRY_PERMISSION, VIEW_PERMISSION, page_context, support_view
from .forms import DispatchFilterForm

PER_PAGE = 50


class CountedPaginator(Paginator):
    """A paginator told its count (the sum of the status counts): no extra COUNT query."""

    def __init__(self, object_list: Any, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self._known_count = count

    @cached_property
    def count(self) -> int:
        return self._known_count


@require_GET
@support_view(VIEW_PERMISSION)
def dispatch_list(request: HttpRequest) -> HttpResponse:
    form = DispatchFilterForm(request.GET)
    context = page_context(request, title="Dispatch log", form=form, export_limit=None)
    if not form.is_valid():  # show the errors, and no rows that would look filtered
        return render(request, "dispatch_log/list.html", context, status=400)
    filters = form.filters()
    counts = selectors.status_counts(filters)
    total = counts.get(filters.status, 0) if filters.status else sum(counts.values())
    paginator = CountedPaginator(selectors.dispatches(filters), PER_PAGE, count=total)
    page = paginator.get_page(request.GET.get("page"))
    context.update(
        filters=filters,
        total=total,
        status_counts=[
            (status, label, counts[status], present.status_class(status))
            for status, label in DispatchStatus.choices
        ],
        page_obj=page,
        page_range=paginator.get_elided_page_range(page.number),
        rows=present.rows(page.object_list),
        export_limit=export.EXPORT_LIMIT,
    )
    return render(request, "dispatch_log/list.html", context)


@require_GET
@support_view(VIEW_PERMISSION)
def dispatch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dispatch = selectors.dispatch(pk)
    if dispatch is None:
        raise Http404("No such dispatch.")
    shown = present.detail(dispatch, may_retry=request.user.has_perm(RETRY_PERMISSION))
    context = page_context(request, title=f"Dispatch {dispatch.pk}", detail=shown)
    return render(request, "dispatch_log/detail.html", context)


@require_POST
@support_view(VIEW_PERMISSION, RETRY_PERMISSION)
def dispatch_retry(request: HttpRequest, pk: int) -> HttpResponse:
    if not selectors.dispatch_exists(pk):
        raise Http404("No such dispatch.")
    if delivery.dispatches_retry([pk], user=request.user):
        messages.success(
            request,
            f"Retry requested: dispatch {pk} is due now and goes out within a minute "
            "(after any earlier open dispatch of its appointment to the same connector).",
        )
    else:
        messages.warning(
            request,
            f"Dispatch {pk} was not retried: it is being sent right now or has already "
            "succeeded.",
        )
    return redirect("dispatch_log:detail", pk=pk)


@require_GET
@support_view(VIEW_PERMISSION)
def dispatch_export(request: HttpRequest) -> HttpResponseBase:
    form = DispatchFilterForm(request.GET)
    if not form.is_valid():
        problems = "; ".join(
            f"{form[name].label if name in form.fields else 'Filters'}: {message}"
            for name, errors in form.errors.items() for message in map(str, errors)
        )
        return HttpResponse(
            f"Nothing exported; fix the filters first. {problems}\n",
            status=400, content_type="text/plain; charset=utf-8",
        )
    filters = form.filters()
    return export.csv_response(filters, total=selectors.dispatches(filters).count())
