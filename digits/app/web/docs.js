// Swagger UI on the description the page names (/openapi.json), with FastAPI's settings: a
// file, not an inline script, so the page's Content-Security-Policy allows only this server's.
"use strict";

window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.url,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
