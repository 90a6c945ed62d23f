/* Live admin pages: re-read the page in the background and update the parts that change.
 *
 * A page opts in with <meta name="sv-live" content="CSS selectors">: every interval the same URL
 * (filters, search and page number included) is fetched and each selected element's content
 * replaced by its fresh counterpart. The list of supervisors is updated cell by cell, keyed by the
 * row's checkbox, so selected rows stay selected and Django's action bar keeps working; when rows
 * appear or disappear, a notice offers a reload instead of moving rows under the pointer.
 * Nothing refreshes while a form field is focused or has been typed in, or while the tab is hidden.
 * Without JavaScript the pages are the same pages, refreshed by reloading.
 */
(function () {
  'use strict';
  const meta = document.querySelector('meta[name="sv-live"]');
  if (!meta) { return; }
  const selectors = meta.content;
  const seconds = Number(window.SV_LIVE_SECONDS || meta.dataset.seconds || 10);
  let typed = false;
  let refreshes = 0;
  document.addEventListener('input', function (event) {
    if (event.target.closest('form') && event.target.type !== 'checkbox') { typed = true; }
  });

  function editing() {
    const active = document.activeElement;
    return typed || Boolean(active && active.matches('input:not([type=checkbox]):not([type=submit]), textarea, select'));
  }

  function status(text) {
    let el = document.getElementById('sv-live-status');
    if (!el) {
      el = document.createElement('p');
      el.id = 'sv-live-status';
      el.className = 'help sv-live-status';
      const content = document.getElementById('content');
      if (content) { content.prepend(el); }
    }
    el.textContent = text;
  }

  function rowKey(row) {
    const box = row.querySelector('input.action-select');
    return box ? box.value : row.textContent;
  }

  function updateRows(current, fresh) {
    const oldRows = Array.from(current.querySelectorAll('tbody tr'));
    const newRows = Array.from(fresh.querySelectorAll('tbody tr'));
    const oldKeys = oldRows.map(rowKey).join('|');
    if (oldKeys !== newRows.map(rowKey).join('|')) {
      status('The list changed since it was loaded: reload the page to see it (filters and page are kept in the link).');
      return;
    }
    oldRows.forEach(function (row, i) {
      const cells = row.children;
      const freshCells = newRows[i].children;
      for (let c = 0; c < cells.length && c < freshCells.length; c++) {
        if (cells[c].querySelector('input.action-select')) { continue; } // the checkbox and its handlers stay
        if (cells[c].innerHTML !== freshCells[c].innerHTML) { cells[c].innerHTML = freshCells[c].innerHTML; }
      }
    });
  }

  async function refresh() {
    if (document.hidden || editing()) {
      if (editing()) { status('Live updates paused while you fill in a form.'); }
      return;
    }
    let response;
    try {
      response = await fetch(window.location.href, {credentials: 'same-origin', headers: {'X-Requested-With': 'sv-live'}});
    } catch (error) {
      status('Live updates: the server did not answer; trying again.');
      return;
    }
    if (!response.ok || response.redirected) { return; }
    const doc = new DOMParser().parseFromString(await response.text(), 'text/html');
    if (editing()) { return; }
    const current = document.querySelectorAll(selectors);
    const fresh = doc.querySelectorAll(selectors);
    current.forEach(function (el, i) {
      const other = fresh[i];
      if (!other) { return; }
      if (el.id === 'result_list') { updateRows(el, other); } else if (el.innerHTML !== other.innerHTML) { el.innerHTML = other.innerHTML; }
    });
    refreshes += 1;
    document.body.dataset.svLiveRefreshes = String(refreshes);
    if (!document.getElementById('sv-live-status') || !document.getElementById('sv-live-status').textContent.startsWith('The list changed')) {
      status('Live: updated ' + new Date().toLocaleTimeString() + ', every ' + seconds + ' s.');
    }
  }

  window.setInterval(refresh, seconds * 1000);
})();
