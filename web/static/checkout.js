// Forms of the store: fill in a demo card, and send a payment once per click.
(function () {
  'use strict';

  // "Use" on a demo card fills the fields the form has.
  document.querySelectorAll('.use-card').forEach(function (button) {
    button.addEventListener('click', function () {
      ['holder', 'number', 'expiry', 'cvv'].forEach(function (name) {
        var input = document.getElementById(name);
        if (input && button.dataset[name] !== undefined) {
          input.value = button.dataset[name];
        }
      });
      var submit = document.querySelector('main form button[type=submit]');
      if (submit) {
        submit.focus();
      }
    });
  });

  // The total follows the quantity.
  var total = document.getElementById('checkout-total');
  var quantity = document.getElementById('quantity');
  if (total && quantity) {
    quantity.addEventListener('input', function () {
      var q = parseInt(quantity.value, 10);
      if (q >= 1 && q <= 10 && String(q) === quantity.value.trim()) {
        var cents = q * parseInt(total.dataset.unitCents, 10);
        total.textContent = total.dataset.symbol + ' ' + (cents / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
      }
    });
  }

  // While a payment is on its way the button is disabled, so a double click sends it once.
  // The server does not rely on it: every submission of one order is one transaction for the
  // bank.
  document.querySelectorAll('form.pay-form').forEach(function (form) {
    var button = form.querySelector('button[type=submit]');
    var label = button ? button.textContent : '';
    form.addEventListener('submit', function () {
      if (!button) {
        return;
      }
      setTimeout(function () {
        button.disabled = true;
        button.textContent = 'Paying…';
      }, 0);
    });
    // Coming back to the page (the back button) finds the button usable again.
    window.addEventListener('pageshow', function () {
      if (button) {
        button.disabled = false;
        button.textContent = label;
      }
    });
  });
})();
