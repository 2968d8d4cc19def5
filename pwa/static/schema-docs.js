// Starts Swagger UI on the /schema page (server/openapi/). A file, not an inline script: pages run
// under a Content-Security-Policy with `script-src 'self'`. The document's URL is the page's data
// attribute; nothing is loaded from outside this server.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    // Swagger UI would otherwise send the document to validator.swagger.io for a badge.
    validatorUrl: null,
    // "Try it out" from the page: same origin, so the session cookie goes along.
    withCredentials: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
  });
})();
