// latentzarr gallery: a paged grid of thumbnails; click one for the full picture and its metadata.
//
// Every request goes through api(): when the endpoint answers 401 (a bearer token is configured) the page asks
// for the token once, keeps it in this tab's sessionStorage and sends it as an Authorization header; it is never
// put in a URL (URLs end up in logs and the history). Pictures are fetched the same way and shown from blob:
// URLs, since <img src> cannot send a header. A 429 is retried after its Retry-After.
//
// Thumbnails: without a token they are plain <img> elements with a srcset at 1x and 2x (THUMB css px, cropped
// square, format=auto so the browser gets AVIF or WebP) and loading="lazy", so the browser picks the density and
// loads only what scrolls into view, and a CDN can cache every URL. With a token the page fetches them itself, at
// the screen's density, when they scroll into view (IntersectionObserver).
"use strict";
const PAGE = 24;
const TOKEN_KEY = "latentzarr.token";
const MAX_RETRIES = 5;
const THUMB = 200;  // css px of a thumbnail's side (the grid's cells are 160 px or more)
const grid = document.getElementById("grid");
let offset = Number(new URLSearchParams(location.search).get("offset") || 0);
let token = sessionStorage.getItem(TOKEN_KEY);
let login = null;  // the pending token prompt, shared by every request that got a 401
let blobs = [];  // object URLs of the current page's thumbnails

const enc = encodeURIComponent;  // ids are opaque: '/' becomes %2F
const fmtBytes = (n) => n == null ? "unknown" : n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function askToken(refused) {
  if (!login) {
    login = new Promise((resolve) => {
      const form = document.getElementById("login");
      const input = document.getElementById("token");
      document.getElementById("login-error").textContent = refused ? "that token was refused" : "";
      form.hidden = false;
      input.value = "";
      input.focus();
      form.onsubmit = (e) => {
        e.preventDefault();
        token = input.value.trim();
        sessionStorage.setItem(TOKEN_KEY, token);
        form.hidden = true;
        login = null;
        resolve();
      };
    });
  }
  return login;
}

async function api(url) {
  for (let attempt = 0; ; attempt++) {
    const sent = token;
    const r = await fetch(url, { headers: sent ? { Authorization: `Bearer ${sent}` } : {} });
    if (r.status === 401) {
      if (token === sent) await askToken(sent != null);  // else another request already got a new token
      continue;
    }
    if (r.status === 429 && attempt < MAX_RETRIES) {
      await sleep(1000 * (Number(r.headers.get("Retry-After")) || 1));
      continue;
    }
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r;
  }
}

async function getJSON(url) {
  return (await api(url)).json();
}

async function showThumb(img, url) {
  try {
    const src = URL.createObjectURL(await (await api(url)).blob());
    blobs.push(src);
    img.src = src;
  } catch (err) {
    img.classList.add("failed");
    img.title = String(err);
  }
}

function thumbUrl(id, dpr, format) {
  return `/v1/images/${enc(id)}?format=${format}&w=${THUMB}&h=${THUMB}&fit=fill&dpr=${dpr}`;
}

const lazy = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting) continue;
    lazy.unobserve(e.target);
    showThumb(e.target, e.target.dataset.src);
  }
}, { rootMargin: "1000px" }) : null;

function setThumb(img, id) {
  if (token == null) {  // public: let the browser choose the density and when to load
    img.loading = "lazy";
    img.decoding = "async";
    img.srcset = `${thumbUrl(id, 1, "auto")} 1x, ${thumbUrl(id, 2, "auto")} 2x`;
    img.src = thumbUrl(id, 1, "auto");
    img.onerror = () => { img.classList.add("failed"); };
    return;
  }
  const url = thumbUrl(id, Math.min(2, Math.max(1, Math.round(window.devicePixelRatio || 1))), "webp");
  if (lazy) {
    img.dataset.src = url;
    lazy.observe(img);
  } else {
    showThumb(img, url);
  }
}

async function loadPage() {
  const page = await getJSON(`/v1/images?offset=${offset}&limit=${PAGE}`);
  document.getElementById("summary").textContent = `${page.total} images`;
  document.getElementById("page").textContent =
    page.total ? `${offset + 1}-${Math.min(offset + PAGE, page.total)}` : "";
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = page.next_offset == null;
  const old = blobs;
  blobs = [];
  grid.replaceChildren(...page.items.map((item) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.alt = item.id;
    img.className = "thumb";
    img.dataset.id = item.id;
    img.width = THUMB;
    img.height = THUMB;
    setThumb(img, item.id);
    const cap = document.createElement("figcaption");
    cap.textContent = item.id;
    fig.append(img, cap);
    fig.addEventListener("click", () => show(item.id));
    return fig;
  }));
  old.forEach((src) => URL.revokeObjectURL(src));
}

async function show(id) {
  const viewer = document.getElementById("viewer");
  const dl = document.getElementById("meta");
  dl.replaceChildren();
  viewer.hidden = false;
  const [meta, png] = await Promise.all([
    getJSON(`/v1/images/${enc(id)}/meta`),
    api(`/v1/images/${enc(id)}?format=png`).then((r) => r.blob()),
  ]);
  const full = document.getElementById("full");
  if (full.src.startsWith("blob:")) URL.revokeObjectURL(full.src);
  full.src = URL.createObjectURL(png);
  full.alt = id;
  const rows = [
    ["id", meta.id],
    ["model", meta.model],
    ["latent shape", meta.shape.join(" x ") + ` (${meta.dtype})`],
    ["stored latent", fmtBytes(meta.stored_bytes)],
    ["PNG (as served)", fmtBytes(png.size)],
    ["latent / PNG", png.size ? `${(100 * meta.stored_bytes / png.size).toFixed(1)} %` : "-"],
    ["source image", fmtBytes(meta.source_bytes)],
    ["created", meta.created || "unknown"],
    ["latent sha256", (meta.latent_sha256 || "").slice(0, 16) + "..."],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    dl.append(dt, dd);
  }
}

document.getElementById("prev").onclick = () => { offset = Math.max(0, offset - PAGE); loadPage(); };
document.getElementById("next").onclick = () => { offset += PAGE; loadPage(); };
document.getElementById("close").onclick = () => { document.getElementById("viewer").hidden = true; };
document.addEventListener("keydown", (e) => { if (e.key === "Escape") document.getElementById("viewer").hidden = true; });
loadPage().catch((err) => { document.getElementById("summary").textContent = String(err); });
