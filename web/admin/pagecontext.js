// "Visitor's page": the latest page context the visitor's widget sent with a message (`setContext`,
// SPEC §16; `context` of the admin detail's session). The page (a link only for http and https
// addresses) and its title stand out; the whole object follows as pretty-printed JSON, as text.

import { h } from "./dom.js";

/** An http(s) URL object for `text`, else null (never a link for javascript:, data: or relative paths). */
function webUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

const nonEmpty = (v) => (typeof v === "string" && v.trim() ? v : null);

/** The section's content for `ctx` (a JSON object); the caller hides the section when there is none. */
export function pageContextParts(ctx) {
  const isObject = ctx && typeof ctx === "object" && !Array.isArray(ctx);
  const places = isObject ? [nonEmpty(ctx.url), nonEmpty(ctx.page)].filter(Boolean) : [];
  // A web address wins (it can be opened); else the first path or name given.
  const link = places.map((p) => [p, webUrl(p)]).find(([, u]) => u);
  const place = link ? link[0] : places[0];
  const title = isObject ? nonEmpty(ctx.title) : null;
  const rows = [];
  if (place) {
    rows.push(h("dt", { text: "Page" }), h("dd", { class: "page-where" },
      link
        ? h("a", { href: link[1].href, target: "_blank", rel: "noopener noreferrer", text: place })
        : h("span", { text: place })));
  }
  if (title) rows.push(h("dt", { text: "Title" }), h("dd", { class: "page-title", text: title }));
  return [
    rows.length ? h("dl", { class: "page-facts" }, rows) : null,
    h("details", { class: "context" },
      h("summary", { text: "Everything the page sent" }),
      h("pre", { class: "json", tabindex: "0", text: JSON.stringify(ctx, null, 2) })),
  ].filter(Boolean);
}
