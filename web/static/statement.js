// The statement refreshes by itself: it asks for the month every few seconds and redraws the
// lines and totals when a purchase lands, without reloading the page.
(function () {
  'use strict';
  var section = document.getElementById('statement');
  var query = document.getElementById('statement-query');
  if (!section || !query) {
    return;
  }
  var every = parseInt(section.dataset.refreshMs, 10) || 2000;
  var body = document.querySelector('#statement-lines tbody');
  var live = document.getElementById('statement-live');
  var liveText = document.getElementById('statement-live-text');
  var seen = {};
  body.querySelectorAll('tr[data-tx]').forEach(function (tr) { seen[tr.dataset.tx] = true; });
  var shown = { count: text('statement-count'), total: text('statement-total') };

  function text(id) {
    var el = document.getElementById(id);
    return el ? el.textContent.trim() : '';
  }
  function setText(id, value) {
    var el = document.getElementById(id);
    if (el) {
      el.textContent = value;
    }
  }
  function status(message, isError) {
    liveText.textContent = message;
    live.classList.toggle('error', !!isError);
  }
  function cell(row, value, className) {
    var td = document.createElement('td');
    td.textContent = value;
    if (className) {
      td.className = className;
    }
    row.appendChild(td);
  }

  function draw(d) {
    var rows = document.createDocumentFragment();
    var added = 0;
    d.lines.forEach(function (line) {
      var tr = document.createElement('tr');
      tr.dataset.tx = line.transaction_id;
      if (!seen[line.transaction_id]) {
        tr.className = 'new';
        seen[line.transaction_id] = true;
        added++;
      }
      cell(tr, line.date);
      cell(tr, line.store);
      cell(tr, line.description);
      cell(tr, line.amount, 'num');
      rows.appendChild(tr);
    });
    if (d.lines.length === 0) {
      var tr = document.createElement('tr');
      tr.className = 'empty';
      var td = document.createElement('td');
      td.colSpan = 4;
      td.textContent = 'No purchases this month yet.';
      tr.appendChild(td);
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
    setText('statement-total', d.total);
    setText('statement-total-foot', d.total);
    setText('statement-count', String(d.count));
    setText('statement-available', d.available);
    shown = { count: String(d.count), total: d.total };
    return added;
  }

  function poll() {
    if (document.visibilityState === 'hidden') {
      setTimeout(poll, every);
      return;
    }
    fetch('/statement/data', {
      method: 'POST',
      body: new URLSearchParams(new FormData(query)),
      headers: { 'Accept': 'application/json' }
    }).then(function (resp) {
      return resp.json().then(function (d) { return { ok: resp.ok, d: d }; });
    }).then(function (res) {
      if (!res.ok) {
        status(res.d.error || 'Could not refresh the statement; trying again.', true);
        return;
      }
      var d = res.d;
      var at = new Date().toLocaleTimeString();
      if (String(d.count) !== shown.count || d.total !== shown.total) {
        var added = draw(d);
        status((added === 1 ? 'A new purchase' : added + ' new purchases') + ' at ' + at + '. Total ' + d.total + '.', false);
      } else if (live.classList.contains('error')) {
        status('Updates by itself when a new purchase lands.', false);
      }
    }).catch(function () {
      status('Could not reach the store; trying again.', true);
    }).finally(function () {
      setTimeout(poll, every);
    });
  }
  setTimeout(poll, every);
})();
