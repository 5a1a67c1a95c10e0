// The drawing page: strokes on a 280x280 canvas (dark ink on white, like paper), sent as a PNG
// to POST /api/predict at most every INTERVAL_MS while drawing and once when a stroke ends.
// The server does the MNIST preprocessing (crop, scale, centre); this file only draws and shows.
"use strict";

const SIZE = 280;
const LINE_WIDTH = 22;
const INK = "#1f2933";
const PAPER = "#ffffff";
const INTERVAL_MS = 100;

const canvas = document.getElementById("pad");
const context = canvas.getContext("2d");
const result = document.getElementById("result");
const digitText = document.getElementById("digit");
const confidenceText = document.getElementById("confidence");
const statusText = document.getElementById("status");
const doubtText = document.getElementById("doubt");
const bars = [...document.querySelectorAll("#bars .bar")];
const modelText = document.getElementById("model");

let activePointer = null; // the pointer drawing now; others (a second finger) are ignored
let last = null;
let hasInk = false;
let generation = 0; // bumped by Clear: answers to older requests are dropped
let inFlight = false;
let pending = false; // the drawing changed since the last request was sent
let timer = null;
let lastSent = 0;

function clearPad() {
  context.fillStyle = PAPER; // opaque, so the PNG has no transparency to interpret
  context.fillRect(0, 0, SIZE, SIZE);
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = LINE_WIDTH;
  context.strokeStyle = INK;
  context.fillStyle = INK;
  hasInk = false;
  pending = false;
  generation += 1;
  clearTimeout(timer);
  timer = null;
  showEmpty();
}

function showEmpty() {
  result.dataset.state = "empty";
  digitText.textContent = "–";
  confidenceText.textContent = "Draw a digit from 0 to 9";
  statusText.textContent = "";
  showDoubt(null);
  for (const bar of bars) {
    bar.classList.remove("top");
    bar.querySelector(".fill").style.width = "0%";
    bar.querySelector(".track").setAttribute("aria-valuenow", "0");
    bar.querySelector(".value").textContent = "";
  }
}

function showPrediction(answer) {
  result.dataset.state = "ready";
  digitText.textContent = String(answer.digit);
  confidenceText.textContent = `${percent(answer.probability)} sure`;
  statusText.textContent = "";
  showDoubt(answer.not_a_digit);
  answer.probabilities.forEach((probability, digit) => {
    const bar = bars[digit];
    bar.classList.toggle("top", digit === answer.digit);
    bar.querySelector(".fill").style.width = `${(probability * 100).toFixed(1)}%`;
    bar.querySelector(".track").setAttribute("aria-valuenow", (probability * 100).toFixed(0));
    bar.querySelector(".value").textContent = percent(probability);
  });
}

// The server's "not a digit" signal: null, or why the drawing does not look like a digit.
function showDoubt(reason) {
  result.dataset.doubt = reason ? "true" : "false";
  doubtText.hidden = !reason;
  doubtText.textContent = reason ? `This does not look like a digit: ${reason}.` : "";
}

function percent(probability) {
  const value = probability * 100;
  return value >= 99.95 ? "100%" : value < 0.05 ? "0%" : `${value.toFixed(1)}%`;
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * SIZE) / box.width,
    y: ((event.clientY - box.top) * SIZE) / box.height,
  };
}

function dot(at) {
  context.beginPath();
  context.arc(at.x, at.y, LINE_WIDTH / 2, 0, 2 * Math.PI);
  context.fill();
}

function segment(from, to) {
  context.beginPath();
  context.moveTo(from.x, from.y);
  context.lineTo(to.x, to.y);
  context.stroke();
}

canvas.addEventListener("pointerdown", (event) => {
  if (activePointer !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  activePointer = event.pointerId;
  try {
    canvas.setPointerCapture(event.pointerId); // keep the stroke when it leaves the canvas
  } catch {
    // not a live pointer (a synthetic event): draw anyway
  }
  last = point(event);
  dot(last);
  hasInk = true;
  schedule();
});

canvas.addEventListener("pointermove", (event) => {
  if (event.pointerId !== activePointer) return;
  event.preventDefault();
  // Coalesced events: every point the pen passed since the last frame, for smooth curves.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of events.length ? events : [event]) {
    const next = point(each);
    segment(last, next);
    last = next;
  }
  schedule();
});

function endStroke(event) {
  if (event.pointerId !== activePointer) return;
  activePointer = null;
  last = null;
  predictNow();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", clearPad);

// At most one request in flight and one every INTERVAL_MS; the latest drawing always gets sent.
function schedule() {
  pending = true;
  if (inFlight || timer !== null) return;
  const wait = Math.max(0, lastSent + INTERVAL_MS - performance.now());
  timer = setTimeout(() => {
    timer = null;
    send();
  }, wait);
}

function predictNow() {
  pending = true;
  clearTimeout(timer);
  timer = null;
  if (!inFlight) send();
}

function send() {
  if (!pending || !hasInk) return;
  pending = false;
  inFlight = true;
  lastSent = performance.now();
  const sentGeneration = generation;
  canvas.toBlob(async (png) => {
    try {
      const response = await fetch("api/predict", {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: png,
      });
      const answer = await response.json();
      if (sentGeneration !== generation) return;
      if (response.ok) showPrediction(answer);
      else statusText.textContent = answer.error || `The server answered ${response.status}`;
    } catch (error) {
      if (sentGeneration === generation) statusText.textContent = "The server did not answer.";
    } finally {
      inFlight = false;
      if (pending) schedule();
    }
  }, "image/png");
}

// Which model answers (GET /api/model): a caption under the page, left hidden if unknown.
async function showModel() {
  try {
    const response = await fetch("api/model");
    if (!response.ok) return;
    const model = await response.json();
    const accuracy =
      model.test_accuracy === null
        ? "test accuracy unknown"
        : `test accuracy ${(model.test_accuracy * 100).toFixed(2)}%`;
    modelText.textContent = `Model: ${model.name}, md5 ${model.md5.slice(0, 8)}, ${accuracy}`;
    modelText.title = model.description;
    modelText.hidden = false;
  } catch (error) {
    // No caption: the page works without it.
  }
}

clearPad();
showModel();
