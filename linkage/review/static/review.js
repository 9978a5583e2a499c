// Keyboard shortcuts for the review app. Only clicks on the page's own buttons and links: nothing is sent
// that a mouse could not send, and every form keeps its CSRF token.
(function () {
  "use strict";
  function click(id) {
    var element = document.getElementById(id);
    if (element) { element.click(); return true; }
    return false;
  }
  function chooseNote(position) {
    var select = document.getElementById("note");
    if (select && position < select.options.length) { select.selectedIndex = position; }
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea") { return; }
    var key = event.key;
    var handled = false;
    if (key === "m") { handled = click("decide-match"); }
    else if (key === "n") { handled = click("decide-non_match"); }
    else if (key === "u") { handled = click("decide-unsure"); }
    else if (key === "j") { handled = click("next"); }
    else if (key === "k") { handled = click("prev"); }
    else if (key === "b") { handled = click("blind-toggle"); }
    else if (key === "l") { handled = click("left-person"); }
    else if (key === "r") { handled = click("right-person"); }
    else if (key === "q") { handled = click("to-queues"); }
    else if (key >= "0" && key <= "9") { chooseNote(parseInt(key, 10)); handled = true; }
    if (handled) { event.preventDefault(); }
  });
}());
