// The session list's filter form: reads it into the query of GET /v1/admin/sessions.

/**
 * A `datetime-local` value ("2026-11-22T09:30" or with seconds), read in the browser's time zone, as
 * RFC 3339 in UTC. `end`: the bound is the end of what was typed (the whole minute or second), since
 * the server's bounds are inclusive at millisecond precision.
 */
export function toRfc3339(value, end = false) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return null;
  if (end) {
    const hasSeconds = /T\d{2}:\d{2}:\d{2}/.test(value);
    d.setTime(d.getTime() + (hasSeconds ? 999 : 59999));
  }
  return d.toISOString();
}

/**
 * The query for the list, without paging; throws an Error with a sentence for a value the
 * server would refuse anyway.
 */
export function readFilters(form) {
  const f = new FormData(form);
  const get = (name) => String(f.get(name) || "").trim();
  const query = {
    status: get("status"),
    user_id: get("user_id"),
    admin_assisted: get("admin_assisted"),
    sort: get("sort") || "created_at",
    order: get("order") || "desc",
  };
  const from = toRfc3339(get("created_from"));
  const to = toRfc3339(get("created_to"), true);
  if (from === null) throw new Error("Created from is not a valid date and time.");
  if (to === null) throw new Error("Created to is not a valid date and time.");
  if (from && to && from > to) throw new Error("Created from must not be after Created to.");
  query.created_from = from;
  query.created_to = to;
  for (const key of Object.keys(query)) if (!query[key]) delete query[key];
  return query;
}
