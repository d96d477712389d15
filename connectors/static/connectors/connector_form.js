/* Connector change form: show the authentication fields of the chosen auth type, and offer only
   the API and auth types the chosen connector type supports. Rules come from connectors/compat.py
   through the "connector-rules" JSON block. Without JavaScript every field stays visible and the
   server still refuses invalid combinations. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  ready(function () {
    var rulesNode = document.getElementById("connector-rules");
    var form = document.getElementById("connector_form");
    if (!rulesNode || !form) { return; }
    var rules = JSON.parse(rulesNode.textContent);
    var typeSelect = form.querySelector("#id_type");
    var apiSelect = form.querySelector("#id_api_type");
    var authSelect = form.querySelector("#id_auth_type");
    if (!typeSelect || !apiSelect || !authSelect) { return; }

    var authFieldNames = {};
    Object.keys(rules.authFields).forEach(function (auth) {
      rules.authFields[auth].forEach(function (name) { authFieldNames[name] = true; });
    });

    function row(name) { return form.querySelector(".form-row.field-" + name); }

    // A row holding an error message stays visible: a hidden error cannot be fixed.
    function setVisible(name, visible) {
      var node = row(name);
      if (node) { node.hidden = !visible && !node.classList.contains("errors"); }
    }

    // A hidden type-only choice goes back to its default, which every connector type accepts
    // (e.g. a payload style left from a webhook would otherwise refuse a change to NAV).
    function resetToDefault(name) {
      var input = form.querySelector("select[name='" + name + "']");
      if (input && Object.prototype.hasOwnProperty.call(rules.typeOnlyDefaults || {}, name)) {
        input.value = rules.typeOnlyDefaults[name];
      }
    }

    function restrict(select, allowed) {
      var current = select.value;
      Array.prototype.forEach.call(select.options, function (option) {
        if (!option.value) { return; }
        var ok = allowed.indexOf(option.value) !== -1;
        option.disabled = !ok;
        option.hidden = !ok;
      });
      // A choice the type refuses moves to the first allowed one; a blank choice is filled in
      // when there is only one possibility (a webhook is always REST, NAV always SOAP).
      if (allowed.length && allowed.indexOf(current) === -1 && (current || allowed.length === 1)) {
        select.value = allowed[0];
      }
    }

    function update() {
      var type = typeSelect.value;
      if (type && rules.apiTypes[type]) {
        restrict(apiSelect, rules.apiTypes[type]);
        var auths = rules.authTypes[type].filter(function (auth) {
          return apiSelect.value !== "rest" || rules.soapOnlyAuthTypes.indexOf(auth) === -1;
        });
        restrict(authSelect, auths);
      }
      var shown = rules.authFields[authSelect.value] || [];
      Object.keys(authFieldNames).forEach(function (name) {
        setVisible(name, shown.indexOf(name) !== -1);
      });
      Object.keys(rules.typeOnlyFields).forEach(function (name) {
        var used = !type || rules.typeOnlyFields[name].indexOf(type) !== -1;
        setVisible(name, used);
        if (!used) { resetToDefault(name); }
      });
    }

    [typeSelect, apiSelect, authSelect].forEach(function (select) {
      select.addEventListener("change", update);
    });
    update();
  });
})();
