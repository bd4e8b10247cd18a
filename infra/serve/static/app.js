// The homepage of one member, read from the API; the buttons send real events when the service allows it.
"use strict";
const $ = (id) => document.getElementById(id);
const DAYPART_HOUR = { late_night: 3, morning: 9, afternoon: 15, evening: 21 };
let actionsOn = false;
let current = null; // the member shown
let awaiting = null; // the last event sent from this page: an earlier action's wait gives way to a later one

function utcOffset() {
  const part = $("daypart").value;
  if (part === "now") return -new Date().getTimezoneOffset();
  let hours = (DAYPART_HOUR[part] - new Date().getUTCHours() + 24) % 24; // local = UTC + offset
  if (hours > 14) hours -= 24;
  return hours * 60;
}

function pageUrl(member) {
  const q = new URLSearchParams({ device: $("device").value, utc_offset: String(utcOffset()), fallback: "trending" });
  return `/v1/members/${encodeURIComponent(member)}/homepage?${q}`;
}

async function fetchPage(member) {
  const response = await fetch(pageUrl(member), { cache: "no-cache" }); // revalidates with the ETag
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  return body;
}

// artwork drawn from its theme: a colour from the theme's name, the theme written on it
function artColour(theme) {
  let h = 0;
  for (const c of theme) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `linear-gradient(135deg, hsl(${h} 55% 38%), hsl(${(h + 40) % 360} 60% 18%))`;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

// the stored reasons are codes (the signal that ranked a title first); a person reads these instead
const SIGNAL_TEXT = {
  item_cf: "watched with titles you watched", implicit_mf: "members like you enjoyed it",
  rating_mf: "you would rate it highly", popularity: "popular now", content: "like what you watch",
  transitions: "often watched next", user_knn: "members like you watched it", search: "matches your searches",
  neural: "fits what you have been watching", arrivals: "new on nextwatch",
};

function reasonText(item) {
  const pick = /^top pick: (\w+)$/.exec(item.reason);
  if (pick) return SIGNAL_TEXT[pick[1]] || item.reason;
  if (item.reason.startsWith("similar to ")) return "watched together with it";
  if (item.reason === "in progress") return `${Math.round(item.score * 100)}% watched`;
  return item.reason;
}

function card(item) {
  const theme = (item.artwork && item.artwork.themes[0]) || "plain";
  const node = el("article", { className: "card" },
    el("div", { className: "art", title: `artwork ${item.artwork ? item.artwork.artwork_id : ""}` }, theme),
    el("h3", {}, item.name || item.title_id),
    el("p", { className: "reason", title: item.reason }, reasonText(item)));
  node.dataset.titleId = item.title_id;
  node.querySelector(".art").style.background = artColour(theme);
  if (actionsOn) {
    const acts = el("div", { className: "acts" });
    const button = (label, action, extra = {}) => {
      const b = el("button", { type: "button" }, label);
      b.dataset.action = action;
      if (extra.stars) b.dataset.stars = String(extra.stars);
      b.addEventListener("click", () => act({ action, title_id: item.title_id, ...extra }, item.name));
      acts.append(b);
    };
    button("Play", "play");
    button("Finish", "finish");
    for (const stars of [1, 3, 5]) button(`${stars}★`, "rate", { stars });
    node.append(acts);
  }
  return node;
}

function render(page) {
  const rows = $("rows");
  rows.replaceChildren();
  for (const row of page.rows) {
    const section = el("section", { className: "row" }, el("h2", {}, row.title),
      el("div", { className: "cards" }, ...row.items.map(card)));
    section.dataset.rowId = row.row_id;
    rows.append(section);
  }
  const when = page.generated_time ? new Date(page.generated_time).toLocaleTimeString() : "now";
  const served = page.fallback ? "no page stored yet: what is trending (cold start)"
    : page.served_context === page.context ? page.served_context
    : `${page.served_context} (none yet for ${page.context})`;
  $("status").textContent = `Member ${page.member_id} · ${served} · built ${when} · ${page.rows.length} rows`;
}

async function show(member) {
  current = member;
  $("member").value = member;
  $("latency").textContent = "";
  try {
    render(await fetchPage(member));
    $("search").hidden = !actionsOn;
  } catch (error) {
    $("rows").replaceChildren();
    $("status").textContent = `Could not show ${member}: ${error.message}`;
  }
}

async function act(body, name) {
  if (!current) return;
  const sentAt = performance.now();
  const what = body.action === "search" ? `search "${body.query}"` : `${body.action} ${name || body.title_id}`;
  $("latency").textContent = `sent ${what}; waiting for the jobs to apply it…`;
  const response = await fetch("/demo/actions", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ member_id: current, device: $("device").value, utc_offset: utcOffset(), ...body }),
  });
  const sent = await response.json();
  if (!response.ok) { $("latency").textContent = `not sent: ${sent.error.message}`; return; }
  awaiting = sent.last_event_id;
  const deadline = sentAt + 120000;
  while (performance.now() < deadline) { // until the homepage reflects the last event sent
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (awaiting !== sent.last_event_id) return; // a later action took over the wait
    let page;
    try { page = await fetchPage(current); } catch (error) { continue; }
    if (page.last_event_id === sent.last_event_id) {
      render(page);
      const seconds = ((performance.now() - sentAt) / 1000).toFixed(1);
      $("latency").textContent = `${what}: on the page ${seconds} s after it was sent (produce → visible)`;
      return;
    }
  }
  $("latency").textContent = `${what}: not on the page after 120 s (are the jobs running?)`;
}

async function randomMember() {
  const response = await fetch("/demo/members?n=50");
  const body = await response.json();
  if (!response.ok || !body.member_ids.length) {
    $("status").textContent = response.ok ? "No member has a homepage yet." : body.error.message;
    return;
  }
  show(body.member_ids[Math.floor(Math.random() * body.member_ids.length)]);
}

async function start() {
  try { actionsOn = (await (await fetch("/demo/config")).json()).demo_actions; } catch (error) { actionsOn = false; }
  $("pick").addEventListener("submit", (event) => { event.preventDefault(); show($("member").value.trim()); });
  $("random").addEventListener("click", randomMember);
  for (const id of ["device", "daypart"]) $(id).addEventListener("change", () => current && show(current));
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("query").value.trim();
    if (query) act({ action: "search", query });
  });
  const params = new URLSearchParams(location.search);
  for (const id of ["device", "daypart"]) {
    const wanted = params.get(id);
    if (wanted && [...$(id).options].some((o) => o.value === wanted)) $(id).value = wanted;
  }
  if (params.get("member")) show(params.get("member"));
}
start();
