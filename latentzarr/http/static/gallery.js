// latentzarr gallery: a paged grid of thumbnails; click one for the full picture and its metadata.
"use strict";
const PAGE = 24;
const grid = document.getElementById("grid");
let offset = Number(new URLSearchParams(location.search).get("offset") || 0);

const enc = encodeURIComponent;  // ids are opaque: '/' becomes %2F
const fmtBytes = (n) => n == null ? "unknown" : n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`;

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function loadPage() {
  const page = await getJSON(`/v1/images?offset=${offset}&limit=${PAGE}`);
  document.getElementById("summary").textContent = `${page.total} images`;
  document.getElementById("page").textContent =
    page.total ? `${offset + 1}-${Math.min(offset + PAGE, page.total)}` : "";
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = page.next_offset == null;
  grid.replaceChildren(...page.items.map((item) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = `/v1/images/${enc(item.id)}?format=webp&size=256`;
    img.alt = item.id;
    img.className = "thumb";
    img.dataset.id = item.id;
    const cap = document.createElement("figcaption");
    cap.textContent = item.id;
    fig.append(img, cap);
    fig.addEventListener("click", () => show(item.id));
    return fig;
  }));
}

async function show(id) {
  const viewer = document.getElementById("viewer");
  const dl = document.getElementById("meta");
  dl.replaceChildren();
  viewer.hidden = false;
  const [meta, png] = await Promise.all([
    getJSON(`/v1/images/${enc(id)}/meta`),
    fetch(`/v1/images/${enc(id)}?format=png`).then((r) => r.blob()),
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
