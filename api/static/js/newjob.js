// The new-job form: a job body as JSON, the seed's XOR example to start from.

import { request } from "./api.js";
import { errorBox, h } from "./format.js";

const EXAMPLE = {
  name: "xor",
  network: { layers: [2, 4, 1] },
  optimizer: { learning_rate: 2.0 },
  epochs: 3000,
  snapshot_every: 100,
  dataset: { builtin: "xor" },
};

export function newJobPage(view) {
  const text = h(
    "textarea",
    { id: "spec", rows: 16, spellcheck: "false" },
    JSON.stringify(EXAMPLE, null, 2),
  );
  const message = h("div");
  const submit = async (event) => {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(text.value);
    } catch (error) {
      message.replaceChildren(errorBox(new Error(`not JSON: ${error.message}`)));
      return;
    }
    try {
      const job = await request("/v1/jobs", { method: "POST", body });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  };
  view.append(
    h("h1", {}, "New job"),
    h(
      "p",
      { class: "muted" },
      "A job body as for POST /v1/jobs: the seed's XOR example to start from.",
    ),
    h(
      "form",
      { class: "new-job", onsubmit: submit },
      text,
      h("button", { type: "submit" }, "Submit"),
      message,
    ),
  );
}
