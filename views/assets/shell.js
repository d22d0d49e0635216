// The portal's and the console's small behaviours (no inline scripts: the pages' CSP allows
// scripts from 'self' only): copy buttons, confirmation of plain forms, select-all boxes, and a
// message when a request does not reach OneID.
(function () {
  'use strict';
  var body = document.body;
  document.addEventListener('click', function (event) {
    var copy = event.target.closest('[data-copy]');
    if (copy) {
      var source = document.getElementById(copy.getAttribute('data-copy'));
      var text = source ? (source.value || source.textContent || '').trim() : '';
      if (navigator.clipboard && text) {
        navigator.clipboard.writeText(text).then(function () {
          copy.setAttribute('data-label', copy.textContent);
          copy.textContent = body.getAttribute('data-copied') || 'Copied';
          setTimeout(function () { copy.textContent = copy.getAttribute('data-label'); }, 2000);
        }).catch(function () { if (source && source.select) source.select(); });
      } else if (source && source.select) {
        source.select();
      }
    }
    var all = event.target.closest('input[data-select-all]');
    if (all) {
      var boxes = document.querySelectorAll('input[type=checkbox][name="' + all.getAttribute('data-select-all') + '"]');
      for (var i = 0; i < boxes.length; i += 1) boxes[i].checked = all.checked;
    }
  });
  // Plain forms (not htmx) that change something ask first: <form data-confirm="...">.
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (form.hasAttribute('data-confirm') && !form.hasAttribute('hx-confirm')) {
      if (!window.confirm(form.getAttribute('data-confirm') || body.getAttribute('data-confirm-default'))) event.preventDefault();
    }
  }, true);
  document.addEventListener('htmx:sendError', function () {
    var flash = document.getElementById('flash');
    if (flash) {
      flash.textContent = '';
      var div = document.createElement('div');
      div.className = 'error';
      div.setAttribute('role', 'alert');
      div.textContent = body.getAttribute('data-network-error');
      flash.appendChild(div);
    }
  });
  // A new request clears the last one's message.
  document.addEventListener('htmx:beforeRequest', function () {
    var flash = document.getElementById('flash');
    if (flash && flash.getAttribute('data-keep') !== 'true') flash.textContent = '';
  });
})();

// Apps pages (#20): <input type="file" data-read-into="ID"> puts the chosen file's text into the
// textarea ID (SAML metadata), so forms stay urlencoded and the file input itself sends nothing.
(function () {
  'use strict';
  document.addEventListener('change', function (event) {
    var input = event.target;
    if (!input.matches || !input.matches('input[type=file][data-read-into]') || !input.files || !input.files[0]) return;
    var target = document.getElementById(input.getAttribute('data-read-into'));
    if (target) input.files[0].text().then(function (text) { target.value = text; });
  });
})();
