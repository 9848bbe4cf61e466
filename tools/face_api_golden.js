// Golden outputs of face-api's own JavaScript for the PyTorch ports in embedding/faces.
//
// Runs the five vendored networks of @vladmandic/face-api 1.7.15 (tfjs CPU backend) on the PNG
// fixtures in tests/fixtures/faces and writes tests/fixtures/faces/golden.json. Every input
// already has the network's size, so no resizing is involved. Set up once, outside the repo:
//
//   mkdir -p /tmp/faceapi && cd /tmp/faceapi && npm init -y
//   npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
//   NODE_PATH=/tmp/faceapi/node_modules node tools/face_api_golden.js
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const ROOT = path.resolve(__dirname, '..');
const FIXTURES = path.join(ROOT, 'tests', 'fixtures', 'faces');
const MODELS = path.join(ROOT, 'embedding', 'assets', 'faces');

// Decode an 8-bit, non-interlaced RGB or RGBA PNG into {width, height, rgb: Float32Array}.
function readPng(file) {
  const buf = fs.readFileSync(file);
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('ascii', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error(`${file}: only 8-bit non-interlaced PNGs`);
      channels = { 2: 3, 6: 4 }[data[9]];
      if (!channels) throw new Error(`${file}: only RGB or RGBA PNGs`);
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    pos += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[y * stride + x - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      pixels[y * stride + x] = (line[x] + pred) & 255;
    }
  }
  const rgb = new Float32Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    for (let k = 0; k < 3; k++) rgb[i * 3 + k] = pixels[i * channels + k];
  }
  return { width, height, rgb };
}

function imageTensor(name) {
  const { width, height, rgb } = readPng(path.join(FIXTURES, name));
  return faceapi.tf.tensor3d(rgb, [height, width, 3], 'float32');
}

const list = (t) => Array.from(t.dataSync());

async function main() {
  await faceapi.tf.setBackend('cpu');
  await faceapi.tf.ready();
  const { nets } = faceapi;
  await nets.faceLandmark68Net.loadFromDisk(MODELS);
  await nets.faceRecognitionNet.loadFromDisk(MODELS);
  await nets.ageGenderNet.loadFromDisk(MODELS);
  await nets.faceExpressionNet.loadFromDisk(MODELS);
  await nets.tinyFaceDetector.loadFromDisk(MODELS);

  const golden = { package: '@vladmandic/face-api@1.7.15', backend: faceapi.tf.getBackend(), faces: {} };
  for (const face of ['face0', 'face1']) {
    const small = imageTensor(`${face}_112.png`);
    const large = imageTensor(`${face}_150.png`);
    const smallInput = await faceapi.toNetInput(small);
    // A 112x96 crop: face-api pads it to a centred square, no resizing.
    const cropped = faceapi.tf.slice3d(small, [8, 0, 0], [96, 112, 3]);
    const ageGender = nets.ageGenderNet.forwardInput(smallInput);
    golden.faces[face] = {
      landmarks: list(nets.faceLandmark68Net.runNet(smallInput)),
      landmarks_112x96: list(nets.faceLandmark68Net.forwardInput(await faceapi.toNetInput(cropped))),
      descriptor: list(nets.faceRecognitionNet.forwardInput(await faceapi.toNetInput(large))),
      age: list(ageGender.age),
      gender: list(ageGender.gender),
      expression: list(nets.faceExpressionNet.forwardInput(smallInput)),
    };
  }

  // The 320x240 scene: padded at the bottom to 320x320, the detector's input size, so no resize.
  const scene = imageTensor('scene.png');
  const options = new faceapi.TinyFaceDetectorOptions({ inputSize: 320, scoreThreshold: 0.3 });
  const raw = nets.tinyFaceDetector.forwardInput(await faceapi.toNetInput(scene), 320);
  const detections = await nets.tinyFaceDetector.locateFaces(scene, options);
  golden.detector = {
    input_size: 320,
    score_threshold: 0.3,
    raw_shape: raw.shape,
    raw: list(raw),
    boxes: detections.map((d) => [d.box.left, d.box.top, d.box.right, d.box.bottom]),
    scores: detections.map((d) => d.score),
  };

  const out = path.join(FIXTURES, 'golden.json');
  fs.writeFileSync(out, `${JSON.stringify(golden)}\n`);
  console.log(`wrote ${out}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
