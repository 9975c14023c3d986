// Roleta's only hand-written script: glue htmx cannot express in markup.
(function () {
  "use strict";
  const token = () => document.querySelector('meta[name="csrf-token"]')?.content;

  // Every htmx request carries the CSRF token as a header.
  document.addEventListener("htmx:config:request", (event) => {
    const t = token();
    if (t) event.detail.ctx.request.headers["X-CSRFToken"] = t;
  });
})();
