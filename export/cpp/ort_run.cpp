// Run an exported tgv-deploy MRI model with the ONNX Runtime C++ API.
//   tgv_ort_run model.onnx kspace.f32 mask.f32 image.f32
// Inputs are raw little-endian float32 files in the contract's layout:
//   kspace (B, 2, H, W) real/imaginary channels of centred k-space, mask (B, 1, 1, W);
// the output image (B, 2, H, W) is written the same way. Shapes are read from the model itself,
// so they always agree with its contract (tensor names "kspace", "mask", "image", "maps").
#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

static std::vector<float> read_floats(const std::string& path, size_t count) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<float> data(count);
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (in.gcount() != static_cast<std::streamsize>(count * sizeof(float)))
    throw std::runtime_error(path + ": expected " + std::to_string(count) + " float32 values");
  return data;
}

static size_t element_count(const std::vector<int64_t>& shape) {
  for (int64_t d : shape)
    if (d < 0) throw std::runtime_error("dynamic-batch models: set the batch explicitly in this example");
  return std::accumulate(shape.begin(), shape.end(), size_t{1}, [](size_t a, int64_t b) { return a * size_t(b); });
}

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: tgv_ort_run model.onnx kspace.f32 mask.f32 image.f32\n";
    return 2;
  }
  try {
    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "tgv-deploy");
    Ort::SessionOptions options;
    Ort::Session session(env, argv[1], options);
    auto kspace_shape = session.GetInputTypeInfo(0).GetTensorTypeAndShapeInfo().GetShape();
    auto mask_shape = session.GetInputTypeInfo(1).GetTensorTypeAndShapeInfo().GetShape();
    auto kspace = read_floats(argv[2], element_count(kspace_shape));
    auto mask = read_floats(argv[3], element_count(mask_shape));
    Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<Ort::Value> inputs;
    inputs.push_back(Ort::Value::CreateTensor<float>(cpu, kspace.data(), kspace.size(), kspace_shape.data(), kspace_shape.size()));
    inputs.push_back(Ort::Value::CreateTensor<float>(cpu, mask.data(), mask.size(), mask_shape.data(), mask_shape.size()));
    const char* input_names[] = {"kspace", "mask"};
    const char* output_names[] = {"image", "maps"};
    auto outputs = session.Run(Ort::RunOptions{nullptr}, input_names, inputs.data(), 2, output_names, 2);
    auto info = outputs[0].GetTensorTypeAndShapeInfo();
    std::ofstream out(argv[4], std::ios::binary);
    out.write(reinterpret_cast<const char*>(outputs[0].GetTensorData<float>()),
              static_cast<std::streamsize>(info.GetElementCount() * sizeof(float)));
    std::cout << "wrote " << argv[4] << " (" << info.GetElementCount() << " float32 values)\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
