// The shopper's page: a live feed over server-sent events, item pages, actions and the ask box.
// Plain JavaScript, no build step, no external resource. Every string exists in zh and en.
"use strict";

const TEXT = {
  en: {
    brand: "shopguide", feedTitle: "For you", back: "← Back", alert: "⚠ reviews turning negative",
    view: "View", fav: "Favourite", cart: "Add to cart", buy: "Buy", highlights: "What reviewers say",
    askTitle: "Ask about this shop or item", askLabel: "Your question", askSend: "Ask",
    human: "Talk to a person", signedOut: "Open this page from the shop's app to sign in.",
    connecting: "connecting", live: "live", reconnecting: "reconnecting", empty: "Recommendations appear as you browse.",
    positive: (r, n) => `${Math.round(r * 100)}% positive · ${n} reviews`, noReviews: "no reviews yet",
    dislike: "Not interested",
    reasons: { viewed: () => "you viewed it before",
      covisited: (c, item) => (item ? `often viewed with ${item}, which you viewed` : "often viewed with items you viewed"),
      bought_together: () => "often bought with items you bought",
      followed: () => "shoppers often view it next after items you viewed", interest: (c) => `you like ${c}`,
      popular: (c) => `popular in ${c}`, popular_shop: () => "popular in the shop", featured: () => "featured by the shop",
      new: () => "new in the shop, picked for your interests" },
    done: { view: "Viewed", fav: "Saved to favourites", cart: "Added to cart", buy: "Bought, thank you!",
      dislike: "Got it, we will not show you this item again." },
    handed: "A person from the shop will take over this conversation.", evidence: "From reviews and shop policy:",
    humanText: "I want to talk to a person", failed: "Sorry, something went wrong; please try again.",
    suggestions: ["How long is shipping?", "Can I return it?", "Is the quality good?", "Does it run small?"],
  },
  zh: {
    brand: "导购", feedTitle: "为你推荐", back: "← 返回", alert: "⚠ 近期差评增多",
    view: "浏览", fav: "收藏", cart: "加入购物车", buy: "购买", highlights: "买家评价",
    askTitle: "问问商品或店铺", askLabel: "你的问题", askSend: "提问",
    human: "转人工客服", signedOut: "请从商城应用打开本页面登录。",
    connecting: "连接中", live: "实时", reconnecting: "重新连接中", empty: "浏览商品后这里会出现推荐。",
    positive: (r, n) => `${Math.round(r * 100)}% 好评 · ${n} 条评价`, noReviews: "暂无评价",
    dislike: "不感兴趣",
    reasons: { viewed: () => "你看过这件商品",
      covisited: (c, item) => (item ? `常与你看过的「${item}」一起被浏览` : "常与你看过的商品一起被浏览"),
      bought_together: () => "常与你买过的商品一起购买",
      followed: () => "看过同样商品的人接着常看它", interest: (c) => `你喜欢 ${c}`,
      popular: (c) => `${c} 热门`, popular_shop: () => "全店热门", featured: () => "店铺精选",
      new: () => "新品，按你的兴趣挑选" },
    done: { view: "已浏览", fav: "已收藏", cart: "已加入购物车", buy: "购买成功，谢谢！",
      dislike: "好的，以后不再向你推荐这件商品。" },
    handed: "店铺客服将接手这次对话。", evidence: "依据（评价与店铺政策）：",
    humanText: "我要转人工", failed: "抱歉，出错了，请重试。",
    suggestions: ["多久发货？", "可以退货吗？", "质量怎么样？", "尺码偏小吗？"],
  },
};

const $ = (id) => document.getElementById(id);
const state = { user: null, lang: "en", feed: null, item: null, source: null, answer: null };

function t(key) { return TEXT[state.lang][key]; }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function badge(c) {
  return c.reviews ? TEXT[state.lang].positive(c.positive_ratio || 0, c.reviews) : t("noReviews");
}

function reasonText(r) {
  const phrase = r && TEXT[state.lang].reasons[r.kind];
  return phrase ? phrase(r.category, r.item) : "";
}

function price(p) { return p == null ? "" : `¥${Number(p).toFixed(2)}`; }

function setStatus(s) {
  const node = document.querySelector("[data-testid=status]");
  node.dataset.state = s;
  node.textContent = t(s);
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  $("lang").textContent = state.lang === "zh" ? "English" : "中文";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("ask-input").placeholder = t("askLabel");
  const sugg = $("suggested");
  sugg.replaceChildren(...t("suggestions").map((q) => {
    const b = el("button", { type: "button" }, q);
    b.addEventListener("click", () => ask(q));
    return b;
  }));
  setStatus(document.querySelector("[data-testid=status]").dataset.state || "connecting");
  renderFeed();
  if (state.item) renderItem(state.item);
  if (state.answer) renderAnswer(state.answer);
}

function renderFeed() {
  const f = state.feed;
  const list = $("feed");
  if (!f) { list.replaceChildren(el("li", { class: "empty" }, t("empty"))); return; }
  list.dataset.trigger = f.trigger_event_id || "";  // which action this feed answers (benchmarks)
  $("chips").replaceChildren(...f.interests.slice(0, 6).map((i) =>
    el("span", { class: "chip", "data-testid": "interest-chip", "data-category": i.category }, i.category)));
  list.replaceChildren(...f.cards.map((c) => {
    const card = el("a", { class: "card", href: `/items/${encodeURIComponent(c.item_id)}`, "data-testid": "card",
      "data-item-id": c.item_id, "data-category": c.category },
    el("span", { class: "title" }, c.title),
    el("span", { class: "price" }, price(c.price)),
    el("span", { class: "cat" }, c.category),
    el("span", { class: "badge", "data-testid": "sentiment-badge" }, badge(c)),
    el("span", { class: "reason", "data-testid": "reason", "data-kind": c.reason ? c.reason.kind : "" }, reasonText(c.reason)));
    if (c.alerting) card.append(el("span", { class: "alert", "data-testid": "alert" }, t("alert")));
    card.addEventListener("click", (ev) => { ev.preventDefault(); act(c.item_id, "click"); go(`/items/${encodeURIComponent(c.item_id)}`); });
    return el("li", {}, card);
  }));
}

function renderItem(d) {
  $("item-title").textContent = d.title;
  $("item-price").textContent = price(d.price);
  $("item-category").textContent = d.category;
  $("item-badge").textContent = badge(d);
  $("item-badge").setAttribute("data-testid", "sentiment-badge");
  $("item-alert").hidden = !d.alerting;
  $("item-attributes").replaceChildren(...Object.entries(d.attributes || {}).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  $("quotes").replaceChildren(...(d.quotes || []).map((q) => el("li", { class: q.label }, q.text)));
}

async function act(itemId, action) {
  const r = await fetch("/api/actions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ item_id: itemId, action }) });
  if (r.ok && action !== "click") $("action-done").textContent = TEXT[state.lang].done[action];
}

function renderAnswer(a) {
  const box = $("answer");
  box.hidden = false;
  box.dataset.handoff = String(Boolean(a.handoff));
  const parts = [el("p", { class: "text" }, a.answer || "")];
  if (a.evidence && a.evidence.length) {
    parts.push(el("p", { class: "meta" }, t("evidence")));
    parts.push(el("ul", { class: "evidence" }, ...a.evidence.map((e) =>
      el("li", { class: e.sentiment || e.label || "", "data-testid": "evidence", lang: e.lang || "" }, e.text || e.sentence || ""))));
  }
  if (a.handoff) parts.push(el("p", { class: "handed", "data-testid": "handoff-notice" }, t("handed")));
  box.replaceChildren(...parts);
}

async function ask(text) {
  if (!text || !text.trim()) return;
  const body = { user_id: state.user, text, lang: state.lang };
  if (state.item) body.item_id = state.item.item_id;
  try {
    const r = await fetch("/ask", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    state.answer = r.ok ? await r.json() : { answer: t("failed"), evidence: [], handoff: false };
  } catch (e) {
    state.answer = { answer: t("failed"), evidence: [], handoff: false };
  }
  renderAnswer(state.answer);
}

function connect() {
  if (state.source) state.source.close();
  setStatus("connecting");
  const source = new EventSource(`/api/users/${encodeURIComponent(state.user)}/feed`);
  state.source = source;
  source.onopen = () => setStatus("live");
  source.addEventListener("feed", (ev) => { state.feed = JSON.parse(ev.data); renderFeed(); });
  source.onerror = () => {
    setStatus("reconnecting");
    // The browser retries by itself after a dropped connection; after a refused one (an HTTP error
    // while the guide restarts) the stream is closed for good, so open a new one.
    if (source.readyState === EventSource.CLOSED) setTimeout(() => { if (state.source === source) connect(); }, 1000);
  };
}

async function route() {
  const m = location.pathname.match(/^\/items\/(.+)$/);
  $("answer").hidden = true;
  state.answer = null;
  if (m) {
    const r = await fetch(`/api/items/${m[1]}`);
    state.item = r.ok ? await r.json() : { item_id: decodeURIComponent(m[1]), title: decodeURIComponent(m[1]), quotes: [] };
    renderItem(state.item);
    $("action-done").textContent = "";
  } else {
    state.item = null;
  }
  $("feed-view").hidden = Boolean(m);
  $("item-view").hidden = !m;
  $("ask").hidden = false;
}

function go(path) { history.pushState({}, "", path); route(); }

async function start() {
  state.lang = localStorage.getItem("sg-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("sg-lang", state.lang);
    applyLanguage();
  });
  $("home").addEventListener("click", (ev) => { ev.preventDefault(); go("/"); });
  $("back").addEventListener("click", () => go("/"));
  for (const b of document.querySelectorAll("[data-action]")) b.addEventListener("click", () => act(state.item.item_id, b.dataset.action));
  $("ask-form").addEventListener("submit", (ev) => { ev.preventDefault(); ask($("ask-input").value); });
  $("handoff").addEventListener("click", () => ask(t("humanText")));
  window.addEventListener("popstate", route);
  applyLanguage();
  const r = await fetch("/api/session");
  if (!r.ok) { $("signed-out").hidden = false; setStatus("reconnecting"); return; }
  state.user = (await r.json()).user_id;
  await route();
  connect();
}

start();
