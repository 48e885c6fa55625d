// The result gallery: one widget for every card (bioclip_nb/dashboard/cards.py).
//
// Cards come from the `cards` trait; thumbnails arrive as custom messages with a binary
// buffer and are kept per model, so a view drawn later shows them too. Every value from the
// data is set as text (textContent, alt, aria-label), never as HTML.
//
// Keyboard: Tab reaches the current card (one tab stop for the gallery), arrows move between
// cards (Up/Down by a row), Home/End go to the ends, Enter or Space opens the card's details.
// A polite live region announces the card reached and the one opened.

function thumbs(model) {
  if (!model._bnbThumbs) {
    model._bnbThumbs = new Map();     // id -> {url} or {missing, why}
    model._bnbListeners = new Set();
    model.on("msg:custom", (msg, buffers) => {
      if (msg.event === "thumb") {
        const old = model._bnbThumbs.get(msg.id);
        if (old && old.url) { URL.revokeObjectURL(old.url); }
        const entry = msg.missing ? { missing: msg.missing, why: msg.why || "" }
                                  : { url: URL.createObjectURL(new Blob([buffers[0]], { type: msg.mime || "image/jpeg" })) };
        model._bnbThumbs.set(msg.id, entry);
      } else if (msg.event === "clear") {
        for (const entry of model._bnbThumbs.values()) { if (entry.url) { URL.revokeObjectURL(entry.url); } }
        model._bnbThumbs.clear();
      }
      for (const listener of model._bnbListeners) { listener(msg); }
    });
  }
  return model._bnbThumbs;
}

function initialize({ model }) {
  thumbs(model);
}

function button(label, cls, tip) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "bnb-card-button " + cls;
  b.textContent = label;
  if (tip) { b.title = tip; }
  return b;
}

function render({ model, el }) {
  const store = thumbs(model);
  const root = document.createElement("div");
  root.className = "bnb-cards";
  const grid = document.createElement("div");
  grid.className = "bnb-grid";
  grid.setAttribute("role", "list");
  grid.setAttribute("aria-label", "Results");
  const live = document.createElement("div");
  live.className = "bnb-sr-only";
  live.setAttribute("aria-live", "polite");
  live.setAttribute("role", "status");
  root.append(grid, live);
  el.append(root);

  let current = 0;            // the card holding the gallery's one tab stop
  const tiles = [];

  const send = (event, id, extra) => model.send(Object.assign({ event: event, id: id }, extra || {}));
  const say = (text) => { live.textContent = ""; window.setTimeout(() => { live.textContent = text; }, 30); };

  function picture(card) {
    const entry = store.get(card.id);
    if (entry && entry.url) {
      const img = document.createElement("img");
      img.className = "bnb-thumb";
      img.src = entry.url;
      img.alt = card.alt;
      return img;
    }
    const box = document.createElement("div");
    box.setAttribute("role", "img");
    if (entry && entry.missing) {
      box.className = "bnb-missing";
      box.textContent = entry.missing;
      box.title = entry.why;
      box.setAttribute("aria-label", card.alt + " (no picture: " + entry.missing + ")");
    } else {
      box.className = "bnb-loading";
      box.textContent = "loading...";
      box.setAttribute("aria-label", card.alt + " (picture loading)");
    }
    return box;
  }

  function caption(card) {
    const cap = document.createElement("div");
    cap.className = "bnb-caption";
    const rank = document.createElement("b");
    rank.textContent = "#" + card.rank;
    const common = document.createElement("span");
    common.className = card.common ? "common" : "bnb-missing-name";
    common.textContent = card.common || "no common name";
    const sci = document.createElement("span");
    sci.className = "sci";
    sci.textContent = card.scientific;
    const sim = document.createElement("span");
    sim.className = "sim";
    sim.textContent = card.similarity;
    if (card.similarity_note) { sim.title = card.similarity_note; }
    cap.append(rank, " ", common, document.createElement("br"), sci, document.createElement("br"), sim);
    return cap;
  }

  function tile(card, index, total) {
    const t = document.createElement("div");
    t.className = "bnb-tile";
    t.setAttribute("role", "listitem");
    t.tabIndex = index === current ? 0 : -1;
    t.dataset.id = String(card.id);
    t.setAttribute("aria-label", card.alt);
    if (card.id === model.get("selected")) { t.classList.add("bnb-selected"); t.setAttribute("aria-current", "true"); }
    const details = button("Details", "bnb-details", "result " + card.rank + " of " + total);
    details.tabIndex = -1;
    details.setAttribute("aria-label", "Details of result " + card.rank);
    details.addEventListener("click", (e) => { e.stopPropagation(); focus(index, false); open(card); });
    const mark = button(card.marked ? "★ Marked" : "☆ Mark", "bnb-mark", "keep this result: 'marked only' exports just the marked ones");
    mark.tabIndex = -1;
    mark.setAttribute("aria-pressed", card.marked ? "true" : "false");
    mark.setAttribute("aria-label", "Mark result " + card.rank);
    mark.addEventListener("click", (e) => { e.stopPropagation(); send("mark", card.id, { marked: !card.marked }); });
    const row = document.createElement("div");
    row.className = "bnb-card-buttons";
    row.append(details, mark);
    t.append(picture(card), caption(card), row);
    if (card.copies > 1) {
      const more = button(card.copies + " copies", "bnb-copies", "this image is in the atlas more than once: show every copy");
      more.tabIndex = -1;
      more.addEventListener("click", (e) => { e.stopPropagation(); send("copies", card.id); });
      t.append(more);
    }
    t.addEventListener("click", () => focus(index, false));
    t.addEventListener("focusin", () => {           // the card, or a button in it: that card's buttons become reachable
      if (current !== index) { focus(index, false); }
      for (const b of t.querySelectorAll("button")) { b.tabIndex = 0; }
    });
    t.addEventListener("focusout", (e) => {
      if (!t.contains(e.relatedTarget)) { for (const b of t.querySelectorAll("button")) { b.tabIndex = -1; } }
    });
    return t;
  }

  function open(card) {
    send("select", card.id);
    say("Details of " + card.alt);
  }

  function focus(index, move) {
    if (!tiles.length) { return; }
    current = Math.max(0, Math.min(tiles.length - 1, index));
    tiles.forEach((t, i) => { t.tabIndex = i === current ? 0 : -1; });
    if (move) {
      tiles[current].focus();
      const cards = model.get("cards");
      say((current + 1) + " of " + cards.length + ": " + cards[current].alt);
    }
  }

  function perRow() {
    if (tiles.length < 2) { return 1; }
    const top = tiles[0].offsetTop;
    const n = tiles.findIndex((t) => t.offsetTop !== top);
    return n === -1 ? tiles.length : n;
  }

  grid.addEventListener("keydown", (e) => {
    if (e.target.classList && e.target.classList.contains("bnb-card-button")) {
      if (e.key !== "ArrowLeft" && e.key !== "ArrowRight" && e.key !== "ArrowUp" && e.key !== "ArrowDown") { return; }
    }
    const steps = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: perRow(), ArrowUp: -perRow() };
    if (e.key in steps) {
      focus(current + steps[e.key], true);
    } else if (e.key === "Home") {
      focus(0, true);
    } else if (e.key === "End") {
      focus(tiles.length - 1, true);
    } else if (e.key === "Enter" || e.key === " ") {
      const cards = model.get("cards");
      if (cards[current]) { open(cards[current]); }
    } else {
      return;
    }
    e.preventDefault();
  });

  function draw() {
    const cards = model.get("cards");
    const hadFocus = root.contains(document.activeElement);
    if (current >= cards.length) { current = 0; }
    tiles.length = 0;
    grid.replaceChildren(...cards.map((card, i) => { const t = tile(card, i, cards.length); tiles.push(t); return t; }));
    if (hadFocus && tiles[current]) { tiles[current].focus(); }
  }

  function redrawPicture(id) {
    const cards = model.get("cards");
    const i = cards.findIndex((c) => c.id === id);
    if (i === -1 || !tiles[i]) { return; }
    tiles[i].replaceChild(picture(cards[i]), tiles[i].firstChild);
  }

  const listener = (msg) => {
    if (msg.event === "thumb") { redrawPicture(msg.id); }
    else if (msg.event === "clear") { draw(); }
  };
  model._bnbListeners.add(listener);
  model.on("change:cards", draw);
  model.on("change:selected", draw);
  draw();
  send("ready", -1);            // the kernel sends the pictures this view may have missed
  return () => { model._bnbListeners.delete(listener); };
}

export default { initialize, render };
