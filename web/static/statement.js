// The statement refreshes by itself: it asks for the month every few seconds and redraws the
// lines, totals and bill when a purchase, a credit or a payment lands, without reloading the
// page.
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
  var shown = { count: text('statement-count'), total: text('statement-total'), closing: text('statement-closing') };

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
      tr.dataset.tx = line.key;
      tr.className = 'line-' + line.kind;
      if (!seen[line.key]) {
        tr.className += ' new';
        seen[line.key] = true;
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
    var b = d.bill;
    setText('statement-closing-label', b.closing_label);
    setText('statement-closing', b.closing);
    setText('statement-closing-bill', b.closing);
    setText('statement-minimum', b.minimum);
    setText('statement-due', b.due);
    setText('statement-opening', b.opening);
    setText('statement-reversals', '\u2212' + b.reversals);
    setText('statement-refunds', '\u2212' + b.refunds);
    setText('statement-payments', '\u2212' + b.payments);
    var st = document.getElementById('statement-bill-status');
    if (st) {
      st.textContent = b.status;
      st.className = 'bill-status bill-' + b.status_code;
    }
    shown = { count: String(d.count), total: d.total, closing: b.closing };
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
      if (String(d.count) !== shown.count || d.total !== shown.total || d.bill.closing !== shown.closing) {
        var added = draw(d);
        status((added === 1 ? 'A new purchase' : added + ' new lines') + ' at ' + at + '. ' + d.bill.closing_label + ' ' + d.bill.closing + '.', false);
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
