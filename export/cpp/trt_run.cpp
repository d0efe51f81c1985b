// Run a tgv-deploy TensorRT engine with the TensorRT C++ runtime API (10.x / 11.x).
//   tgv_trt_run model.plan kspace.f32 mask.f32 image.f32
// Written against NvInferRuntime.h without access to TensorRT here: UNCONFIRMED (docs/tensorrt.md).
// Sequence: deserializeCudaEngine -> createExecutionContext -> setInputShape + setTensorAddress for
// every I/O tensor by the contract's names -> enqueueV3 on a stream -> cudaStreamSynchronize.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {
class Logger : public nvinfer1::ILogger {
  void log(Severity severity, char const* msg) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << "\n";
  }
};

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(in), {}};
}

size_t volume(const nvinfer1::Dims& d) {
  size_t n = 1;
  for (int i = 0; i < d.nbDims; ++i) {
    if (d.d[i] < 0) throw std::runtime_error("unresolved dynamic dimension");
    n *= size_t(d.d[i]);
  }
  return n;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: tgv_trt_run model.plan kspace.f32 mask.f32 image.f32\n";
    return 2;
  }
  Logger logger;  // outlives the runtime
  try {
    auto plan = read_file(argv[1]);
    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(plan.data(), plan.size())};
    if (!engine) throw std::runtime_error("could not deserialize the engine (TensorRT version or GPU differ?)");
    std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};
    cudaStream_t stream;
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    std::map<std::string, std::string> files{{"kspace", argv[2]}, {"mask", argv[3]}};
    std::map<std::string, void*> device;
    for (int i = 0; i < engine->getNbIOTensors(); ++i) {
      const char* name = engine->getIOTensorName(i);
      if (engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT) continue;
      auto host = read_file(files.at(name));
      nvinfer1::Dims shape = engine->getTensorShape(name);
      if (shape.d[0] < 0) {  // dynamic batch: infer it from the file size
        size_t per_item = 1;
        for (int k = 1; k < shape.nbDims; ++k) per_item *= size_t(shape.d[k]);
        shape.d[0] = int64_t(host.size() / sizeof(float) / per_item);
      }
      context->setInputShape(name, shape);
      check(cudaMalloc(&device[name], host.size()), "cudaMalloc");
      check(cudaMemcpyAsync(device[name], host.data(), host.size(), cudaMemcpyHostToDevice, stream), "copy in");
      context->setTensorAddress(name, device[name]);
    }
    std::vector<float> image;
    for (int i = 0; i < engine->getNbIOTensors(); ++i) {
      const char* name = engine->getIOTensorName(i);
      if (engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kOUTPUT) continue;
      size_t bytes = volume(context->getTensorShape(name)) * sizeof(float);
      check(cudaMalloc(&device[name], bytes), "cudaMalloc");
      context->setTensorAddress(name, device[name]);
      if (std::string(name) == "image") image.resize(bytes / sizeof(float));
    }
    if (!context->enqueueV3(stream)) throw std::runtime_error("enqueueV3 failed");
    check(cudaMemcpyAsync(image.data(), device["image"], image.size() * sizeof(float), cudaMemcpyDeviceToHost, stream), "copy out");
    check(cudaStreamSynchronize(stream), "synchronize");
    std::ofstream(argv[4], std::ios::binary).write(reinterpret_cast<const char*>(image.data()), image.size() * sizeof(float));
    for (auto& [name, ptr] : device) cudaFree(ptr);
    cudaStreamDestroy(stream);
    std::cout << "wrote " << argv[4] << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
