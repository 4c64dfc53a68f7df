// The lists the dashboard decides with (event kinds, outcomes, run states, reason codes, policy
// fields, charts), read once from the server (`GET /api/v1/vocabulary`) after sign-in, so the
// browser keeps no copy of its own to drift from the server's.

import { get } from "./api.js";

let loaded = null;

/// Loads the vocabulary (once; later calls reuse it).
export async function loadVocabulary() {
  loaded ??= await get("/api/v1/vocabulary");
  return loaded;
}

/// The vocabulary, once loaded (every signed-in page is shown after `loadVocabulary`).
export function words() {
  if (!loaded) throw new Error("the dashboard's vocabulary is not loaded yet");
  return loaded;
}
