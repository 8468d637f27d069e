// The engine's face detector and descriptor against their original: face-api.js
// (@vladmandic/face-api, MIT) on TensorFlow.js' CPU backend, the same weights the app serves.
// For every picture in ../fixtures/faces (and one photo without a face) it writes the detections
// (tiny face detector, input 416, score > 0.5) and each face's 128-d descriptor, computed from
// the detection box exactly as face-api's `extractFaceTensors` + `computeFaceDescriptor` do,
// into ../fixtures/faces/golden.json. `npm ci && node reference.mjs` (in models/faces).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, '../fixtures/faces');
const weights = path.join(here, 'node_modules/@vladmandic/face-api/model');
const INPUT_SIZE = 416;
const SCORE_THRESHOLD = 0.5;

function readRgb(file) {
  const png = PNG.sync.read(fs.readFileSync(file));
  const rgb = new Int32Array(png.width * png.height * 3);
  for (let i = 0; i < png.width * png.height; i += 1) {
    for (let c = 0; c < 3; c += 1) rgb[i * 3 + c] = png.data[i * 4 + c];
  }
  return tf.tensor3d(rgb, [png.height, png.width, 3], 'int32');
}

await tf.setBackend('cpu');
await tf.ready();
await faceapi.nets.tinyFaceDetector.loadFromDisk(weights);
await faceapi.nets.faceRecognitionNet.loadFromDisk(weights);

const files = [
  ...fs.readdirSync(fixtures).filter((name) => name.endsWith('.png')).sort(),
  '../photos/toddler-2.png',
];
const images = [];
for (const file of files) {
  const image = readRgb(path.join(fixtures, file));
  const options = new faceapi.TinyFaceDetectorOptions({ inputSize: INPUT_SIZE, scoreThreshold: SCORE_THRESHOLD });
  const detections = await faceapi.detectAllFaces(image, options);
  const crops = await faceapi.extractFaceTensors(image, detections);
  const faces = [];
  for (const [index, detection] of detections.entries()) {
    const descriptor = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(crops[index]);
    const { x, y, width, height } = detection.box;
    faces.push({ box: [x, y, width, height], score: detection.score, descriptor: Array.from(descriptor) });
  }
  crops.forEach((crop) => crop.dispose());
  images.push({ file, width: image.shape[1], height: image.shape[0], faces });
  image.dispose();
  console.log(`${file}: ${faces.length} face(s) ${faces.map((face) => face.score.toFixed(4)).join(' ')}`);
}

const golden = {
  reference: `@vladmandic/face-api ${faceapi.version}, TensorFlow.js ${tf.version.tfjs} (${tf.getBackend()})`,
  input_size: INPUT_SIZE,
  score_threshold: SCORE_THRESHOLD,
  images,
};
fs.writeFileSync(path.join(fixtures, 'golden.json'), `${JSON.stringify(golden, null, 1)}\n`);
