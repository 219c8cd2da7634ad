// Meridian's status page: polls /status.json and redraws the map and the tables.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function ago(now, t) {
  if (t === null || t === undefined) return "never";
  const s = Math.max(0, now - t);
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : `${Math.floor(s / 3600)} h ago`;
}

function drawMap(pools) {
  const layer = document.getElementById("dcs");
  layer.replaceChildren();
  for (const pool of pools) {
    for (const dc of pool.datacenters) {
      const g = document.createElementNS(SVG, "g");
      g.setAttribute("class", "dc");
      g.dataset.pool = pool.name;
      g.dataset.datacenter = dc.name;
      g.dataset.state = dc.state;
      const x = dc.longitude + 180, y = 90 - dc.latitude;
      const c = document.createElementNS(SVG, "circle");
      c.setAttribute("cx", x);
      c.setAttribute("cy", y);
      c.setAttribute("r", 2 + 6 * Math.sqrt(dc.share));
      c.setAttribute("class", dc.state);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${pool.name} ${dc.name}: ${dc.state}, ${(dc.share * 100).toFixed(0)} % of recent answers`;
      c.appendChild(title);
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", x + 3);
      label.setAttribute("y", y + 1.5);
      label.textContent = `${dc.name} ${(dc.share * 100).toFixed(0)}%`;
      g.append(c, label);
      layer.appendChild(g);
    }
  }
}

function drawDatacenters(pools) {
  const body = document.querySelector("#datacenters tbody");
  body.replaceChildren();
  for (const pool of pools) {
    for (const dc of pool.datacenters) {
      const row = body.insertRow();
      row.dataset.datacenter = dc.name;
      row.dataset.state = dc.state;
      cell(row, pool.name);
      cell(row, dc.name);
      cell(row, dc.state, `state ${dc.state}`);
      cell(row, `${dc.live} / ${dc.endpoints}`);
      cell(row, dc.recent_answers);
      cell(row, `${(dc.share * 100).toFixed(1)} %`);
    }
  }
  if (!pools.length) cell(body.insertRow(), "no geo pools");
}

function drawZones(zones) {
  const body = document.querySelector("#zones tbody");
  body.replaceChildren();
  for (const z of zones) {
    const row = body.insertRow();
    row.dataset.zone = z.zone;
    cell(row, z.zone);
    cell(row, z.serial);
    cell(row, z.changed);
    cell(row, z.pools);
  }
  if (!zones.length) cell(body.insertRow(), "no zones");
}

function drawPools(pools) {
  const body = document.querySelector("#pools tbody");
  body.replaceChildren();
  for (const p of pools) {
    const row = body.insertRow();
    row.dataset.pool = p.name;
    row.dataset.policy = p.policy;
    row.dataset.state = p.state;
    cell(row, p.zone);
    cell(row, p.name);
    cell(row, p.policy);
    cell(row, p.state, `state ${p.state}`);
    cell(row, `${p.live} / ${p.endpoints}`);
  }
  if (!pools.length) cell(body.insertRow(), "no pools");
}

function drawEndpoints(now, endpoints, inSet) {
  const body = document.querySelector("#endpoints tbody");
  body.replaceChildren();
  for (const e of endpoints) {
    const row = body.insertRow();
    row.dataset.check = e.check;
    row.dataset.state = e.state;
    cell(row, e.check);
    cell(row, e.state, `state ${e.state}`);
    cell(row, ago(now, e.since));
    cell(row, ago(now, e.last_checked));
    cell(row, e.latency_ms === null ? "–" : `${e.latency_ms.toFixed(1)} ms`);
    cell(row, e.last_result ?? "–");
    cell(row, e.pools.join(", "));
    // In a nameserver set: each instance's opinion (the state above is their decision).
    if (inSet) {
      const opinions = Object.entries(e.opinions ?? {}).map(([i, s]) => `${i}: ${s}`);
      cell(row, opinions.length ? opinions.join(", ") : "–");
    }
  }
  for (const th of document.querySelectorAll(".set-only")) th.hidden = !inSet;
  if (!endpoints.length) cell(body.insertRow(), "no probed endpoints");
}

function drawSet(set) {
  const section = document.getElementById("set");
  section.hidden = !set;
  if (!set) return;
  const state = set.connected ? "connected" : "etcd unreachable: serving the local copy";
  document.getElementById("set-summary").textContent =
    `${set.instance} · ${state} · revision ${set.revision} · live: ${set.instances.join(", ")}`;
  section.dataset.connected = set.connected;
}

function drawRegistrations(registrations) {
  const body = document.querySelector("#registrations tbody");
  body.replaceChildren();
  for (const r of registrations) {
    const row = body.insertRow();
    row.dataset.address = r.address;
    cell(row, r.zone);
    cell(row, r.pool);
    cell(row, r.address);
    cell(row, r.datacenter ?? "–");
    cell(row, r.weight ?? "–");
    cell(row, `${Math.round(r.expires_in_ms / 1000)} s`);
  }
  if (!registrations.length) cell(body.insertRow(), "no registered endpoints");
}

async function refresh() {
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    const status = await response.json();
    drawZones(status.zones);
    drawPools(status.all_pools);
    drawMap(status.pools);
    drawDatacenters(status.pools);
    drawEndpoints(status.now, status.endpoints, Boolean(status.set));
    drawRegistrations(status.registrations);
    drawSet(status.set);
    const ready = document.getElementById("ready");
    ready.textContent = status.ready ? "ready" : "not ready";
    ready.className = `badge ${status.ready ? "ready" : "notready"}`;
    document.getElementById("window").textContent = status.window_seconds;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    document.getElementById("updated").textContent = `cannot reach the server: ${error}`;
  }
}

refresh();
setInterval(refresh, 5000);
