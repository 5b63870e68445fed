// labelloop review: keyboard-first decisions. Item text is never inserted as HTML.
(function () {
  "use strict";
  const dataNode = document.getElementById("page-data");
  if (!dataNode) return;
  const page = JSON.parse(dataNode.textContent);
  const $ = (selector) => document.querySelector(selector);
  const $$ = (selector) => Array.from(document.querySelectorAll(selector));

  function show(node, text) { node.textContent = text; node.hidden = false; }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {}),
    });
    let payload = {};
    try { payload = await response.json(); } catch (e) { /* empty body */ }
    return {status: response.status, payload};
  }

  // an open item stays ours while the page is open, and goes back to the queue when we leave it
  if (!page.adjudicating) {
    const itemUrl = `/api/items/${encodeURIComponent(page.item_id)}`;
    setInterval(() => { post(`${itemUrl}/hold`); }, 30000);
    window.addEventListener("pagehide", () => { navigator.sendBeacon(`${itemUrl}/release`); });
  }

  async function decide(action, output) {
    if (page.adjudicating) { adjudicate(action, action === "accept" ? page.output : output); return; }
    const {status, payload} = await post(`/api/items/${encodeURIComponent(page.item_id)}/decision`,
                                         {action, version: page.version, output: output || null});
    if (status === 200) { window.location.assign(payload.next); return; }
    if (status === 409) {
      show($("#conflict"), `${payload.detail} at ${payload.at}: ${JSON.stringify(payload.output)}. ` +
                           "Your answer was not saved; nothing was overwritten.");
      return;
    }
    show($("#message"), typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail));
  }

  async function adjudicate(action, output) {
    const {status, payload} = await post(`/api/items/${encodeURIComponent(page.item_id)}/adjudication`,
                                         {skip: action === "skip", output: output || null});
    if (status === 200) { window.location.assign(payload.next); return; }
    show($("#message"), typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail));
  }
  $$(".use-answer").forEach((button) => button.addEventListener("click",
    () => adjudicate("use", page.answers[Number(button.dataset.index)].output)));

  async function undo() {
    const {status, payload} = await post("/api/undo");
    if (status === 200) window.location.assign(payload.next);
    else show($("#message"), payload.detail || "nothing to undo");
  }

  // -- classify: labels by number or search -------------------------------------------------
  const labelButtons = $$(".label-choice");
  function visibleLabels() { return labelButtons.filter((b) => !b.closest("li").hidden); }
  function pick(button) { decide("label", {label: button.dataset.label}); }
  labelButtons.forEach((button) => button.addEventListener("click", () => pick(button)));
  const search = $("#label-search");
  if (search) {
    search.addEventListener("input", () => {
      const needle = search.value.trim().toLowerCase();
      labelButtons.forEach((b) => { b.closest("li").hidden = !b.dataset.label.toLowerCase().includes(needle); });
    });
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); const first = visibleLabels()[0]; if (first) pick(first); }
    });
  }

  // -- extract: per-field accept / edit -------------------------------------------------------
  const rows = $$("tr.field");
  const choiceSets = $$("fieldset.choices");
  function control(row) { return row.querySelector("fieldset, textarea, input, select"); }
  function setEditing(row, editing) {
    const input = control(row);
    input.disabled = !editing;
    row.classList.toggle("edited", editing);
    row.querySelector(".edit-field").hidden = editing;
    row.querySelector(".accept-field").hidden = !editing;
    if (editing) input.focus();
  }
  rows.forEach((row) => {
    row.querySelector(".edit-field").addEventListener("click", () => setEditing(row, true));
    row.querySelector(".accept-field").addEventListener("click", () => {
      const input = control(row);
      const original = page.output ? page.output[row.dataset.field] : null;
      if (input.tagName === "FIELDSET") {
        input.querySelectorAll("input").forEach((box) => { box.checked = (original || []).includes(box.value); });
      } else if (input.tagName === "SELECT") input.value = JSON.stringify(original);
      else input.value = original === null || original === undefined ? "" : String(original);
      setEditing(row, false);
    });
  });
  function fieldValue(row) {
    const input = control(row);
    if (input.tagName === "FIELDSET") {
      return Array.from(input.querySelectorAll("input:checked")).map((box) => box.value);
    }
    if (input.tagName === "SELECT") return JSON.parse(input.value);
    const raw = input.value.trim();
    if (raw === "" && input.dataset.nullable === "true") return null;
    if (input.dataset.kind === "integer") return Number.parseInt(raw, 10);
    if (input.dataset.kind === "number") return Number.parseFloat(raw);
    if (input.dataset.kind === "json") {
      try { return JSON.parse(raw); } catch (error) { return raw; }  // not JSON: the server names the field
    }
    return raw;
  }
  function submitAll() {
    if (labelButtons.length) { decide("accept"); return; }
    const edited = mentionsEdited || citationsEdited || rows.some((row) => row.classList.contains("edited"));
    if (!edited && page.output) { decide("accept"); return; }
    const output = {};
    rows.forEach((row) => { output[row.dataset.field] = fieldValue(row); });
    if (page.mentions_field) {
      output[page.mentions_field] = mentions.map(({text, label, start, end}) => ({text, label, start, end}));
    }
    if (citationList) output.citations = citations.filter(Boolean);
    decide("edit", output);
  }

  // -- spans: select text to mark it; click a mark to relabel (number) or delete it -------------------
  const spanText = $("#span-text");
  const mentions = page.mentions_field && page.output ? (page.output[page.mentions_field] || []).map((m) => ({...m}))
                                                      : [];
  let currentLabel = page.span_labels ? page.span_labels[0] : null;
  let selected = null;
  let mentionsEdited = false;

  function renderSpans() {
    if (!spanText) return;
    spanText.textContent = "";
    const sorted = mentions.map((m, index) => ({...m, index})).sort((a, b) => a.start - b.start);
    let at = 0;
    sorted.forEach((m) => {
      if (m.start < at) return;  // overlapping marks: the first one is drawn
      spanText.append(document.createTextNode(page.text.slice(at, m.start)));
      const mark = document.createElement("mark");
      mark.textContent = page.text.slice(m.start, m.end);
      mark.dataset.label = m.label;
      mark.dataset.index = String(m.index);
      if (selected === m.index) mark.classList.add("selected");
      mark.addEventListener("click", (event) => { event.stopPropagation(); selected = m.index; renderSpans(); });
      spanText.append(mark);
      at = m.end;
    });
    spanText.append(document.createTextNode(page.text.slice(at)));
    $$(".span-label").forEach((b) => b.classList.toggle("current", b.dataset.label === currentLabel));
  }

  function offsetIn(container, node, offset) {
    const range = document.createRange();
    range.setStart(container, 0);
    range.setEnd(node, offset);
    return range.toString().length;
  }

  if (spanText) {
    spanText.addEventListener("mouseup", () => {
      const selection = window.getSelection();
      if (!selection.rangeCount || selection.isCollapsed) return;
      const range = selection.getRangeAt(0);
      if (!spanText.contains(range.startContainer) || !spanText.contains(range.endContainer)) return;
      let start = offsetIn(spanText, range.startContainer, range.startOffset);
      let end = offsetIn(spanText, range.endContainer, range.endOffset);
      while (start < end && /\s/.test(page.text[start])) start += 1;
      while (end > start && /\s/.test(page.text[end - 1])) end -= 1;
      selection.removeAllRanges();
      if (start === end || !currentLabel) return;
      mentions.push({text: page.text.slice(start, end), label: currentLabel, start, end});
      mentionsEdited = true;
      selected = null;
      renderSpans();
    });
    $$(".span-label").forEach((b) => b.addEventListener("click", () => { currentLabel = b.dataset.label; renderSpans(); }));
    renderSpans();
  }

  function spanKey(event) {
    if (!spanText) return false;
    if (/^[1-9]$/.test(event.key) && page.span_labels[Number(event.key) - 1]) {
      const label = page.span_labels[Number(event.key) - 1];
      if (selected !== null) { mentions[selected].label = label; mentionsEdited = true; }
      else currentLabel = label;
      renderSpans();
      return true;
    }
    if ((event.key === "Delete" || event.key === "Backspace") && selected !== null) {
      mentions.splice(selected, 1);
      selected = null;
      mentionsEdited = true;
      renderSpans();
      return true;
    }
    return false;
  }

  // -- qa: citations are fixed by selecting text in a cited passage; the server checks each quote ------------
  const citationList = $("#citations");
  const citations = citationList && page.output ? (page.output.citations || []).map((c) => ({...c})) : [];
  let citationsEdited = false;

  function removeCitation(index) {
    citations[index] = null;
    citationsEdited = true;
    const item = citationList.querySelector(`li[data-index="${index}"]`);
    if (item) item.remove();
    $$(".passage mark").forEach((mark) => {  // a mark no remaining citation covers is no longer highlighted
      const live = mark.dataset.cite.split(" ").some((n) => citations[Number(n)]);
      mark.classList.toggle("uncited", !live);
    });
    $("#no-citations").hidden = citations.some(Boolean);
  }

  function listCitation(citation, index) {  // text only: quotes come from the documents
    const item = document.createElement("li");
    item.className = "citation added";
    item.dataset.index = String(index);
    const quote = document.createElement("q");
    quote.className = "quote";
    quote.textContent = citation.quote;
    const where = document.createElement("small");
    where.textContent = `${citation.doc} · characters ${citation.start}–${citation.end} (selected)`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove-citation";
    remove.textContent = "remove";
    remove.addEventListener("click", () => removeCitation(index));
    item.append(quote, " ", where, " ", remove);
    citationList.append(item);
  }

  function citeSelection() {
    const selection = window.getSelection();
    if (!selection.rangeCount || selection.isCollapsed) { show($("#message"), "select text in a passage first"); return; }
    const range = selection.getRangeAt(0);
    const passage = range.commonAncestorContainer.nodeType === Node.ELEMENT_NODE
      ? range.commonAncestorContainer.closest(".passage") : range.commonAncestorContainer.parentElement.closest(".passage");
    if (!passage) { show($("#message"), "select text inside one passage"); return; }
    const text = passage.textContent;
    let start = offsetIn(passage, range.startContainer, range.startOffset);
    let end = offsetIn(passage, range.endContainer, range.endOffset);
    while (start < end && /\s/.test(text[start])) start += 1;
    while (end > start && /\s/.test(text[end - 1])) end -= 1;
    selection.removeAllRanges();
    if (start === end) return;
    const at = Number(passage.dataset.start);
    const citation = {doc: passage.dataset.doc, paragraph: "selected", quote: text.slice(start, end),
                      version: Number(passage.dataset.version), start: at + start, end: at + end};
    citations.push(citation);
    citationsEdited = true;
    listCitation(citation, citations.length - 1);
    $("#no-citations").hidden = true;
  }

  if (citationList) {
    citationList.querySelectorAll("li.citation").forEach((item) => item.querySelector(".remove-citation")
      .addEventListener("click", () => removeCitation(Number(item.dataset.index))));
  }
  const citeButton = $("#cite-selection");
  if (citeButton) {
    citeButton.addEventListener("mousedown", (event) => event.preventDefault());  // keep the selection
    citeButton.addEventListener("click", citeSelection);
  }

  // -- buttons and keys -------------------------------------------------------------------------
  $("#accept-all").addEventListener("click", submitAll);
  $("#skip").addEventListener("click", () => decide("skip"));
  if ($("#undo")) $("#undo").addEventListener("click", undo);
  $("#help-toggle").addEventListener("click", () => { $("#help").hidden = !$("#help").hidden; });

  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName);
    if (event.key === "Escape" && typing) { event.target.blur(); return; }
    const newline = event.target.tagName === "TEXTAREA" && !(event.ctrlKey || event.metaKey);
    if (event.key === "Enter" && typing && event.target !== search && !newline) {
      event.preventDefault(); submitAll(); return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (spanKey(event)) { event.preventDefault(); return; }
    if (event.key === "Enter") { event.preventDefault(); submitAll(); }
    else if (event.key === "s") decide("skip");
    else if (event.key === "u" && !page.adjudicating) undo();
    else if (event.key === "?") $("#help").hidden = !$("#help").hidden;
    else if (event.key === "/" && search) { event.preventDefault(); search.focus(); }
    else if (event.key === "e" && rows.length) setEditing(rows[0], true);
    else if (event.key === "c" && citeButton) citeSelection();
    else if (/^[1-9]$/.test(event.key) && choiceSets.length) {  // multilabel: keys toggle labels
      const row = choiceSets[0].closest("tr.field");
      if (choiceSets[0].disabled) setEditing(row, true);
      const box = choiceSets[0].querySelectorAll("input")[Number(event.key) - 1];
      if (box) box.checked = !box.checked;
    }
    else if (/^[1-9]$/.test(event.key) && labelButtons.length) {
      const button = visibleLabels()[Number(event.key) - 1];
      if (button) pick(button);
    }
  });
})();
