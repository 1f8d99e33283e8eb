/**
 * Packs layer tars made by `fixtures/encapsulated/export-chunked.py` (ostree-ext's object
 * layers, from a real `ostree` repository) into an OCI layout with umoci, labelled as an
 * encapsulated bootc image, optionally with a derived layer on top.
 */
import { run } from "./tools.js";

/** The fixed history/config timestamp of the packed images (reproducible digests). */
export const ENCAPSULATED_CREATED = "2023-11-14T22:13:20Z";

/** One object layer as the exporter reports it. */
export interface ObjectLayer {
  file: string;
  diffId: string;
}

/**
 * Creates `layout` and the image `layout:tag` from the object layers (in order) with the
 * labels ostree-ext writes (`ostree.final-diffid` = the last object layer's diff_id,
 * `ostree.commit`, `containers.bootc=1`, plus `labels`). A `derived` layer is then added on
 * top: to `tag` itself, or under `derived.tag` (leaving `tag` the base image).
 */
export function packEncapsulatedImage(options: {
  layout: string;
  tag: string;
  objectLayers: readonly ObjectLayer[];
  commit: string;
  labels?: readonly string[];
  derived?: { file: string; tag?: string };
}): void {
  const { layout, tag, objectLayers, commit } = options;
  const image = `${layout}:${tag}`;
  const last = objectLayers[objectLayers.length - 1];
  if (!last) throw new Error("packEncapsulatedImage: no object layers");
  run("umoci", ["init", "--layout", layout]);
  run("umoci", ["new", "--image", image]);
  for (const l of objectLayers)
    run("umoci", [
      "raw",
      "add-layer",
      "--history.created",
      ENCAPSULATED_CREATED,
      "--image",
      image,
      l.file,
    ]);
  const labels = [
    `ostree.final-diffid=${last.diffId}`,
    `ostree.commit=${commit}`,
    ...(options.labels ?? []),
    "containers.bootc=1",
  ];
  run("umoci", [
    "config",
    "--image",
    image,
    "--created",
    ENCAPSULATED_CREATED,
    ...labels.flatMap((l) => ["--config.label", l]),
  ]);
  if (options.derived)
    run("umoci", [
      "raw",
      "add-layer",
      "--history.created",
      ENCAPSULATED_CREATED,
      "--image",
      image,
      ...(options.derived.tag ? ["--tag", options.derived.tag] : []),
      options.derived.file,
    ]);
}
