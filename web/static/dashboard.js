// The dashboard redraws its figures and charts from /dashboard/data every two seconds. The
// charts are small SVGs drawn here; the tables under them hold the same numbers as text.
(function () {
  'use strict';
  var root = document.getElementById('dashboard');
  if (!root) {
    return;
  }
  var symbol = root.dataset.symbol || '';
  var NS = 'http://www.w3.org/2000/svg';
  var EVERY = 2000;
  var BIN = 5; // seconds per column of the rate chart

  function money(cents) {
    return symbol + ' ' + (cents / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function ms(v, count) {
    return count ? v.toFixed(2) + ' ms' : '—';
  }
  function set(id, value) {
    var el = document.getElementById(id);
    if (el) {
      el.textContent = value;
    }
  }
  function svg(width, height, label) {
    var s = document.createElementNS(NS, 'svg');
    s.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    s.setAttribute('preserveAspectRatio', 'xMidYMid meet');
    if (label) {
      s.setAttribute('role', 'img');
      s.setAttribute('aria-label', label);
    } else {
      s.setAttribute('aria-hidden', 'true');
    }
    return s;
  }
  function el(parent, name, attrs, content) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (content !== undefined) {
      e.textContent = content;
    }
    parent.appendChild(e);
    return e;
  }
  function niceMax(v) {
    if (v <= 1) {
      return 1;
    }
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * p >= v) {
        return steps[i] * p;
      }
    }
    return 10 * p;
  }

  // Stacked columns of two series per second (approved and rejected, or reversals and
  // refunds: their names and classes), averaged over BIN seconds.
  function drawRate(d, width, first, second) {
    first = first || 'approved';
    second = second || 'rejected';
    var W = Math.max(width || 900, 280), H = 220, L = 44, R = 8, T = 10, B = 26;
    var s = svg(W, H);
    var n = Math.ceil(d.series[first].length / BIN);
    var bins = [];
    var max = 0;
    for (var i = 0; i < n; i++) {
      var a = 0, r = 0;
      for (var j = i * BIN; j < Math.min((i + 1) * BIN, d.series[first].length); j++) {
        a += d.series[first][j];
        r += d.series[second][j];
      }
      bins.push([a / BIN, r / BIN]);
      max = Math.max(max, (a + r) / BIN);
    }
    max = niceMax(max);
    var plotW = W - L - R, plotH = H - T - B, colW = plotW / n;
    for (var g = 0; g <= 4; g++) {
      var y = T + plotH - plotH * g / 4;
      el(s, 'line', { x1: L, x2: W - R, y1: y, y2: y, 'class': 'grid' });
      var v = max * g / 4;
      el(s, 'text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, String(Number(v.toFixed(2))));
    }
    bins.forEach(function (b, i) {
      var x = L + i * colW + 1;
      var ha = plotH * b[0] / max, hr = plotH * b[1] / max;
      if (ha > 0) {
        el(s, 'rect', { x: x, y: T + plotH - ha, width: Math.max(colW - 2, 1), height: ha, 'class': first });
      }
      if (hr > 0) {
        el(s, 'rect', { x: x, y: T + plotH - ha - hr, width: Math.max(colW - 2, 1), height: hr, 'class': second });
      }
    });
    var minutes = d.window_seconds / 60;
    var labelEvery = W < 500 ? 2 : 1;
    for (var m = 0; m <= minutes; m++) {
      if ((minutes - m) % labelEvery !== 0 && m !== 0) {
        continue;
      }
      var xm = L + plotW * m / minutes;
      var label = m === minutes ? 'now' : '-' + (minutes - m) + ' min';
      el(s, 'text', { x: xm, y: H - 6, 'text-anchor': m === 0 ? 'start' : (m === minutes ? 'end' : 'middle') }, label);
    }
    return s;
  }

  // Horizontal bars with a label and a value each.
  function drawBars(rows, bad, width) {
    var W = Math.max(width || 420, 240), rowH = 30, L = Math.round(W * 0.42), R = 84;
    var H = Math.max(rows.length, 1) * rowH + 4;
    var s = svg(W, H);
    if (rows.length === 0) {
      el(s, 'text', { x: 0, y: 18, 'class': 'label' }, 'Nothing yet');
      return s;
    }
    var max = Math.max.apply(null, rows.map(function (r) { return r.value; })) || 1;
    rows.forEach(function (r, i) {
      var y = i * rowH + 4;
      var fit = Math.max(Math.floor((L - 8) / 6.6), 6);
      var name = r.label.length > fit ? r.label.slice(0, fit - 1) + '…' : r.label;
      el(s, 'text', { x: 0, y: y + 16, 'class': 'label' }, name);
      el(s, 'rect', { x: L, y: y + 3, width: Math.max((W - L - R) * r.value / max, 2), height: rowH - 10, rx: 3, 'class': bad ? 'bar bad' : 'bar' });
      el(s, 'text', { x: W, y: y + 16, 'text-anchor': 'end' }, r.text);
    });
    return s;
  }

  function fillTable(id, rows, empty) {
    var body = document.querySelector('#' + id + ' tbody');
    var frag = document.createDocumentFragment();
    rows.forEach(function (cells) {
      var tr = document.createElement('tr');
      cells.forEach(function (c, i) {
        var td = document.createElement('td');
        td.textContent = c;
        if (i > 0) {
          td.className = 'num';
        }
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    if (rows.length === 0) {
      var tr = document.createElement('tr');
      tr.className = 'empty';
      var td = document.createElement('td');
      td.colSpan = id === 'table-stores' ? 3 : 2;
      td.textContent = empty;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
  }

  function draw(d) {
    var total = d.approved + d.rejected;
    set('kpi-rate', d.rate_per_second.toFixed(1));
    set('kpi-approval', d.approval_rate === undefined ? '—' : (d.approval_rate * 100).toFixed(1) + '%');
    set('kpi-p50', ms(d.latency_ms.p50, total));
    set('kpi-p90', ms(d.latency_ms.p90, total));
    set('kpi-p99', ms(d.latency_ms.p99, total));
    set('kpi-amount', money(d.approved_cents));
    set('sum-approved', String(d.approved));
    set('sum-rejected', String(d.rejected));
    var rate = document.getElementById('chart-rate');
    rate.setAttribute('aria-label', d.approved + ' approved and ' + d.rejected + ' rejected in the last 5 minutes');
    rate.replaceChildren(drawRate(d, rate.clientWidth));
    set('kpi-credits', d.credits_per_second.toFixed(1));
    set('kpi-refund-rate', d.refund_rate === undefined ? '—' : (d.refund_rate * 100).toFixed(1) + '%');
    set('sum-reversals', String(d.reversals));
    set('sum-refunds', String(d.refunds));
    set('sum-credited', money(d.credited_cents));
    var credits = document.getElementById('chart-credits');
    credits.setAttribute('aria-label', d.reversals + ' reversals and ' + d.refunds + ' refunds in the last 5 minutes');
    credits.replaceChildren(drawRate(d, credits.clientWidth, 'reversals', 'refunds'));
    var latency = document.getElementById('chart-latency');
    latency.replaceChildren(drawBars(total ? [
      { label: 'p50', value: d.latency_ms.p50, text: ms(d.latency_ms.p50, total) },
      { label: 'p90', value: d.latency_ms.p90, text: ms(d.latency_ms.p90, total) },
      { label: 'p99', value: d.latency_ms.p99, text: ms(d.latency_ms.p99, total) }
    ] : [], false, latency.clientWidth));
    var stores = document.getElementById('chart-stores');
    stores.replaceChildren(drawBars(d.stores.map(function (s) {
      return { label: s.store, value: s.amount_cents, text: money(s.amount_cents) };
    }), false, stores.clientWidth));
    var reasons = document.getElementById('chart-reasons');
    reasons.replaceChildren(drawBars(d.reasons.map(function (r) {
      return { label: r.label, value: r.count, text: String(r.count) };
    }), true, reasons.clientWidth));
    fillTable('table-stores', d.stores.map(function (s) { return [s.store, String(s.count), money(s.amount_cents)]; }),
      'No approved payments in the last 5 minutes.');
    fillTable('table-reasons', d.reasons.map(function (r) { return [r.label, String(r.count)]; }),
      'No rejections in the last 5 minutes.');
    var dot = document.querySelector('#dash-live .dot');
    dot.classList.toggle('off', !d.connected);
    set('dash-live-text', d.connected ? 'Live: the last 5 minutes of payments' : 'Waiting for the bank\u2019s results…');
  }

  function poll() {
    fetch('/dashboard/data', { headers: { 'Accept': 'application/json' } })
      .then(function (resp) { return resp.json(); })
      .then(draw)
      .catch(function () { set('dash-live-text', 'Could not reach the store; trying again.'); })
      .finally(function () { setTimeout(poll, EVERY); });
  }
  poll();
})();
