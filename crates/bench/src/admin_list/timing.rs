//! Timing the list over one keep-alive HTTP connection as the operator:
//! warm-up requests, then percentiles of the timed ones and the server's CPU.

use super::*;

/// The timings of one query (and of its deep page).
pub(super) struct QueryResult {
    pub(super) label: String,
    pub(super) matches: u64,
    pub(super) first: Timing,
    pub(super) deep: Option<Timing>,
}

pub(super) struct Timing {
    pub(super) ms: Ms,
    /// Items on the timed page.
    pub(super) items: usize,
    /// Server CPU per measured request, in milliseconds.
    pub(super) server_cpu_ms: f64,
}

pub(super) async fn time_queries(
    args: &AdminListArgs,
    node: &harness::Node,
    plan: &Plan,
    fill: &Fill,
) -> Result<Vec<QueryResult>> {
    let client = crate::api::client(1)?;
    let base = format!("{}/v1/admin/sessions", node.base);
    let mut out = Vec::new();
    for (q, &matches) in plan.queries.iter().zip(&fill.matches) {
        let url = format!("{base}?{}", q.query);
        let first = time(&client, node.pid, &url, args.repeats).await?;
        let deep = if q.deep {
            // The page after `depth` pages: follow the cursors there once.
            let mut cursor = None;
            for _ in 0..args.depth {
                let page_url = cursor.as_ref().map_or_else(|| url.clone(), |c| format!("{url}&cursor={c}"));
                cursor = get(&client, &page_url).await?["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            match cursor {
                Some(c) => Some(time(&client, node.pid, &format!("{url}&cursor={c}"), args.repeats).await?),
                None => None,
            }
        } else {
            None
        };
        let p99 = |t: &Timing| t.ms.p99.unwrap_or(0.0);
        eprintln!(
            "  {}: p99 {:.2} ms{}",
            q.query,
            p99(&first),
            deep.as_ref().map_or_else(String::new, |d| format!(", deep page p99 {:.2} ms", p99(d)))
        );
        out.push(QueryResult { label: q.label.clone(), matches, first, deep });
    }
    Ok(out)
}

/// `GET url` as the operator; the body as JSON (200 only).
pub(super) async fn get(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    let (status, body) = send(client, url).await?;
    if status != 200 {
        return Err(format!("GET {url}: HTTP {status}: {}", crate::api::snippet(&body)).into());
    }
    serde_json::from_slice(&body).context("the list's JSON")
}

pub(super) async fn send(client: &reqwest::Client, url: &str) -> Result<(u16, bytes::Bytes)> {
    let response = client
        .get(url)
        .bearer_auth(OPERATOR_TOKEN)
        .header("x-tenant-id", TENANT)
        .send()
        .await
        .context("GET /v1/admin/sessions")?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await.context("reading the list")?))
}

/// Times `repeats` requests of `url` (after the warm-up), each from before
/// it is sent to the end of its body; stops early past `QUERY_BUDGET`.
pub(super) async fn time(
    client: &reqwest::Client,
    pid: Option<u32>,
    url: &str,
    repeats: u32,
) -> Result<Timing> {
    let budget = Instant::now() + QUERY_BUDGET;
    let mut items = 0;
    for _ in 0..WARMUP {
        items = get(client, url).await?["items"].as_array().map_or(0, Vec::len);
    }
    let cpu_before = pid.and_then(|p| sys::cpu_ns(Some(p)));
    let mut samples = Vec::with_capacity(repeats as usize);
    for _ in 0..repeats {
        let start = Instant::now();
        let (status, body) = send(client, url).await?;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}: {}", crate::api::snippet(&body)).into());
        }
        if Instant::now() > budget {
            break;
        }
    }
    let cpu_after = pid.and_then(|p| sys::cpu_ns(Some(p)));
    let server_cpu_ms = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / 1e6 / samples.len().max(1) as f64,
        _ => 0.0,
    };
    Ok(Timing { ms: Ms::of(&samples), items, server_cpu_ms })
}
