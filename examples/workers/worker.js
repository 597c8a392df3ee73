// A Worker serving focal-reward with durable run state: each run is one Durable Object (its
// requests serialized by the object's input gate, its state in the object's SQLite storage).
// Bindings: FOCAL_RUN (the Durable Object namespace of class FocalRun), FOCAL_OPTIONS (JSON text:
// the handler options, e.g. {"rubric": {...}, "scope": "stream", "judge": "rules"}).
import { createEngine } from "focal-reward";
import { createRunObject, routeToRun } from "focal-reward/service";

export const FocalRun = createRunObject((env) => ({ ...JSON.parse(env.FOCAL_OPTIONS), createEngine }));

export default {
  fetch: (request, env) => routeToRun(request, env.FOCAL_RUN),
};
