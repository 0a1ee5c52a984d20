// The playground: one slider per module, streamed completions, judges' scores. No build step.
"use strict";
const $ = (id) => document.getElementById(id);
let baseModel = null;
let range = [-1, 2];

function say(message, error = true) {
  $("status").textContent = message;
  $("status").className = error ? "error" : "";
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function apiError(response) {
  try { return (await response.json()).error.message; } catch (e) { return response.status + " " + response.statusText; }
}

function showMethods(methods) {
  // the methods this server runs per request, from its registry (GET /v1/models), not a list of our own
  const select = $("method");
  const chosen = select.value;
  if (!methods.length) return;
  select.textContent = "";
  for (const name of methods) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    select.appendChild(option);
  }
  if (methods.includes(chosen)) select.value = chosen;
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) { $("sliders").textContent = "could not list models: " + await apiError(response); return; }
  const models = (await response.json()).data;
  const base = models.find((m) => m.kind === "base");
  baseModel = base.id;
  const [lo, hi] = base.composition.weight_range;
  range = [Math.max(-1, lo), Math.min(2, hi)];  // the page's sliders: −1 to 2, within the server's range
  $("base").textContent = "Base model: " + base.id + ".";
  showMethods(base.composition.methods || []);
  showAttributes((base.steer || {}).attributes || {});
  const box = $("sliders");
  const previous = {};  // keep the weights when the list is reloaded (e.g. after typing an API key)
  for (const input of box.querySelectorAll("input[type=range]")) previous[input.dataset.module] = input.value;
  box.textContent = "";
  const modules = models.filter((m) => m.kind === "module");
  if (!modules.length) box.textContent = "no modules: the base model alone";
  for (const m of modules) {
    const row = document.createElement("div");
    row.className = "slider";
    const label = document.createElement("label");
    label.htmlFor = "w-" + m.id;
    label.textContent = m.id + " ";
    const info = document.createElement("small");
    info.textContent = [m.attribute, m.label].filter(Boolean).join(": ");
    label.appendChild(info);
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: range[0], max: range[1], step: 0.1, id: "w-" + m.id });
    input.value = previous[m.id] || 0;
    input.dataset.module = m.id;
    const value = document.createElement("output");
    value.textContent = Number(input.value).toFixed(1);
    input.addEventListener("input", () => { value.textContent = Number(input.value).toFixed(1); });
    row.append(label, input, value);
    box.appendChild(row);
  }
}

// One control per steerable attribute. A two-valued attribute (sentiment: negative, positive) is one
// slider from −2 (the first value at strength 2) through 0 (off) to 2 (the second value at strength 2);
// an attribute with more values (topic) is a value menu and a strength slider.
function showAttributes(attributes) {
  const box = $("attributes");
  box.textContent = "";
  const names = Object.keys(attributes);
  if (!names.length) { box.textContent = "no module carries an attribute and a label"; return; }
  for (const attribute of names) {
    const values = attributes[attribute];
    const row = document.createElement("div");
    row.className = "slider";
    const label = document.createElement("label");
    label.htmlFor = "a-" + attribute;
    label.textContent = attribute;
    const cell = document.createElement("div");
    const input = document.createElement("input");
    Object.assign(input, { type: "range", step: 0.1, value: 0, id: "a-" + attribute });
    input.dataset.attribute = attribute;
    const value = document.createElement("output");
    value.textContent = "off";
    if (values.length === 2) {
      Object.assign(input, { min: -2, max: 2 });
      input.dataset.values = JSON.stringify(values);
      const ends = document.createElement("div");
      ends.className = "ends";
      ends.innerHTML = "<span></span><span></span>";
      ends.children[0].textContent = "← " + values[0];
      ends.children[1].textContent = values[1] + " →";
      cell.append(input, ends);
    } else {
      Object.assign(input, { min: 0, max: 2 });
      const select = document.createElement("select");
      select.id = "v-" + attribute;
      for (const v of values) select.add(new Option(v, v));
      label.append(" ", select);
      cell.append(input);
    }
    input.addEventListener("input", () => { value.textContent = describeSteer(input) || "off"; });
    row.append(label, cell, value);
    box.appendChild(row);
  }
}

// [value, strength] an attribute control asks for, or null when it is off.
function steerOf(input) {
  const w = Number(input.value);
  if (w === 0) return null;
  if (input.dataset.values) {
    const [low, high] = JSON.parse(input.dataset.values);
    return [w < 0 ? low : high, Math.abs(w)];
  }
  return [$("v-" + input.dataset.attribute).value, w];
}

function describeSteer(input) {
  const s = steerOf(input);
  return s ? s[0] + " " + s[1].toFixed(1) : "";
}

function steer() {
  const targets = {}, strength = {};
  for (const input of document.querySelectorAll("#attributes input[type=range]")) {
    const s = steerOf(input);
    if (s) { targets[input.dataset.attribute] = s[0]; strength[input.dataset.attribute] = s[1]; }
  }
  return Object.keys(targets).length ? { targets, strength } : null;
}

function composition() {
  const modules = {};
  for (const input of document.querySelectorAll("#sliders input[type=range]")) {
    const w = Number(input.value);
    if (w !== 0) modules[input.dataset.module] = w;
  }
  return Object.keys(modules).length ? { modules, method: $("method").value } : null;
}

async function generate() {
  say("", false);
  $("single").hidden = false;
  $("compare-view").hidden = true;
  $("judges").textContent = "—";
  const out = $("output");
  out.textContent = "";
  const promptSpan = document.createElement("span");
  promptSpan.className = "prompt";
  promptSpan.textContent = $("prompt").value;
  const textSpan = document.createElement("span");
  textSpan.id = "generated";
  out.append(promptSpan, textSpan);
  const body = { model: baseModel, prompt: $("prompt").value, max_tokens: Number($("max-tokens").value),
                 seed: Number($("seed").value), stream: true };
  const comp = composition(), steering = steer();
  if (comp && steering) { say("use either the attribute controls or the module sliders, not both"); return; }
  if (comp) body.composition = comp;
  if (steering) body.steer = steering;
  $("generate").disabled = true;
  try {
    const response = await fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!response.ok) { say(await apiError(response)); return; }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {  // server-sent events: "data: {...}\n\n"
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) { say(chunk.error.message); continue; }
        for (const choice of chunk.choices) textSpan.textContent += choice.text || "";
      }
    }
    if (!$("status").textContent) {  // no error event in the stream
      say("done", false);
      await judge(promptSpan.textContent + textSpan.textContent);
    }
  } catch (e) {
    say("request failed: " + e);
  } finally {
    $("generate").disabled = false;
  }
}

// The judges' scores of `text` as a table in `box`; `against` (another text's result) adds each
// label's change in probability. Returns the result, or null when the judges could not be asked.
async function judge(text, box = $("judges"), against = null) {
  const response = await fetch("/v1/judge", { method: "POST", headers: headers(), body: JSON.stringify({ text }) });
  if (!response.ok) { box.textContent = await apiError(response); return null; }
  const result = await response.json();
  box.textContent = "";
  if (!result.attributes.length) { box.textContent = "no judges on this server (start it with --judges auto)"; return result; }
  const table = document.createElement("table");
  for (const [attribute, score] of Object.entries(result.scores)) {
    const row = table.insertRow();
    row.insertCell().textContent = attribute;
    row.insertCell().textContent = score.vote;
    const cell = row.insertCell();
    for (const [label, p] of Object.entries(score.probabilities)) {
      if (cell.childNodes.length) cell.append(", ");
      cell.append(label + " " + p.toFixed(2));
      const before = against && against.scores[attribute] && against.scores[attribute].probabilities[label];
      if (before === undefined || before === null) continue;
      const change = document.createElement("span");
      const d = p - before;
      change.className = d > 0.005 ? "up" : d < -0.005 ? "down" : "";
      change.textContent = " (" + (d >= 0 ? "+" : "−") + Math.abs(d).toFixed(2) + ")";
      cell.append(change);
    }
  }
  box.appendChild(table);
  const notes = [];
  if (result.pending.length) notes.push("still loading: " + result.pending.join(", "));
  for (const [a, why] of Object.entries(result.failed)) notes.push(a + " unavailable: " + why);
  if (notes.length) box.append(notes.join("; "));
  return result;
}

// Compare view: the same prompt, seed and length twice, once without any module and once with the
// page's composition or steering, side by side with each text's judge scores (the composed column shows
// each label's change against the base). Each sequence has its own generator, so batching the two
// requests together on the server does not change either text.
async function compare() {
  say("", false);
  const comp = composition(), steering = steer();
  if (comp && steering) { say("use either the attribute controls or the module sliders, not both"); return; }
  if (!comp && !steering) { say("set a module weight or an attribute first: there is nothing to compare with the base"); return; }
  const prompt = $("prompt").value;
  const common = { model: baseModel, prompt, max_tokens: Number($("max-tokens").value), seed: Number($("seed").value) };
  const composed = Object.assign({}, common, comp ? { composition: comp } : { steer: steering });
  $("compare-what").textContent = comp
    ? comp.method + ": " + Object.entries(comp.modules).map(([m, w]) => m + " " + w).join(", ")
    : "steer: " + Object.entries(steering.targets).map(([a, v]) => a + " " + v + " " + steering.strength[a]).join(", ");
  for (const id of ["compare-base", "compare-composed", "compare-base-judges", "compare-composed-judges"]) $(id).textContent = "…";
  $("compare-view").hidden = false;
  $("single").hidden = true;
  $("generate").disabled = $("compare").disabled = true;
  try {
    const ask = (body) => fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    const responses = await Promise.all([ask(common), ask(composed)]);
    const texts = [];
    for (const [response, id] of [[responses[0], "compare-base"], [responses[1], "compare-composed"]]) {
      if (!response.ok) { const message = await apiError(response); $(id).textContent = message; say(message); return; }
      const text = (await response.json()).choices[0].text;
      const box = $(id);
      box.textContent = "";
      const promptSpan = document.createElement("span");
      promptSpan.className = "prompt";
      promptSpan.textContent = prompt;
      box.append(promptSpan, text);
      texts.push(prompt + text);
    }
    const base = await judge(texts[0], $("compare-base-judges"));
    await judge(texts[1], $("compare-composed-judges"), base);
    say("compared", false);
  } catch (e) {
    say("request failed: " + e);
  } finally {
    $("generate").disabled = $("compare").disabled = false;
  }
}

$("generate").addEventListener("click", generate);
$("compare").addEventListener("click", compare);
$("api-key").addEventListener("change", loadModels);
loadModels();
