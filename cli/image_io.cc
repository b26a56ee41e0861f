#include "cli/image_io.h"

#include <png.h>
#include <tiffio.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

namespace cytonet {
namespace {

enum class ImageFormat { kPng, kTiff, kUnknown };

ImageFormat FormatOf(const std::string& path) {
  if (path.ends_with(".png")) return ImageFormat::kPng;
  if (path.ends_with(".tif") || path.ends_with(".tiff")) return ImageFormat::kTiff;
  return ImageFormat::kUnknown;
}

// TIFF's SampleFormat for a data type; without it readers take every sample as unsigned.
uint16_t TiffSampleFormat(DataType type) {
  switch (type) {
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
    case DataType::kInt64:
      return SAMPLEFORMAT_INT;
    case DataType::kFloat32:
    case DataType::kFloat64:
      return SAMPLEFORMAT_IEEEFP;
    case DataType::kBool:
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
    case DataType::kUint64:
      return SAMPLEFORMAT_UINT;
  }
  return SAMPLEFORMAT_UINT;
}

Status WritePng(const std::string& path, ByteSpan pixels, int64_t height, int64_t width, int bpp) {
  std::unique_ptr<FILE, decltype(&std::fclose)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) return ErrnoError("creating " + path, errno);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return IOError("libpng failed writing " + path);
  }
  png_init_io(png, file.get());
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8 * bpp,
               PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  if (bpp == 2) png_set_swap(png);  // PNG stores 16-bit big-endian
  for (int64_t y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(pixels.data() + y * width * bpp));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return Status::Ok();
}

Status WriteTiff(const std::string& path, ByteSpan pixels, int64_t height, int64_t width, DataType type) {
  const int bpp = static_cast<int>(DataTypeSize(type));
  TIFF* tiff = TIFFOpen(path.c_str(), "w8");  // BigTIFF: sections pass 4 GiB
  if (!tiff) return IOError("libtiff could not create " + path);
  TIFFSetField(tiff, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(width));
  TIFFSetField(tiff, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(height));
  TIFFSetField(tiff, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(tiff, TIFFTAG_BITSPERSAMPLE, 8 * bpp);
  TIFFSetField(tiff, TIFFTAG_SAMPLEFORMAT, TiffSampleFormat(type));
  TIFFSetField(tiff, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  TIFFSetField(tiff, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tiff, TIFFTAG_COMPRESSION, COMPRESSION_DEFLATE);
  TIFFSetField(tiff, TIFFTAG_ROWSPERSTRIP, 64);
  for (int64_t y = 0; y < height; ++y) {
    if (TIFFWriteScanline(tiff, const_cast<uint8_t*>(pixels.data() + y * width * bpp), static_cast<uint32_t>(y), 0) <
        0) {
      TIFFClose(tiff);
      return IOError("libtiff failed writing row " + std::to_string(y) + " of " + path);
    }
  }
  TIFFClose(tiff);
  return Status::Ok();
}

}  // namespace

Status CheckImageType(const std::string& path, DataType type) {
  switch (FormatOf(path)) {
    case ImageFormat::kTiff:
      return Status::Ok();
    case ImageFormat::kPng: {
      if (type == DataType::kBool || type == DataType::kUint8 || type == DataType::kUint16) {
        return Status::Ok();
      }
      const std::string kind = IsFloatType(type) ? "floating-point"
                               : (type == DataType::kInt8 || type == DataType::kInt16 || type == DataType::kInt32 ||
                                  type == DataType::kInt64)
                                   ? "signed"
                                   : "wider than 16-bit";
      return InvalidArgumentError(path + ": PNG cannot hold " + kind + " values (the array is " +
                                  std::string(DataTypeName(type)) +
                                  "; PNG holds uint8 or uint16): write .tif or .raw instead");
    }
    case ImageFormat::kUnknown:
      break;
  }
  return InvalidArgumentError("unknown image type for " + path + " (use .png, .tif or .raw)");
}

Status WriteGreyImage(const std::string& path, ByteSpan pixels, int64_t height, int64_t width, DataType type) {
  RETURN_IF_ERROR(CheckImageType(path, type));
  const uint64_t expected = static_cast<uint64_t>(height) * static_cast<uint64_t>(width) * DataTypeSize(type);
  if (height < 0 || width < 0 || pixels.size() != expected) {
    return InvalidArgumentError(path + ": " + std::to_string(pixels.size()) + " bytes do not make a " +
                                std::to_string(height) + " × " + std::to_string(width) + " " +
                                std::string(DataTypeName(type)) + " image");
  }
  if (FormatOf(path) == ImageFormat::kPng) {
    return WritePng(path, pixels, height, width, static_cast<int>(DataTypeSize(type)));
  }
  return WriteTiff(path, pixels, height, width, type);
}

Status WriteGreyImage(const std::string& path, ByteSpan pixels, int64_t height, int64_t width, int bytes_per_pixel) {
  if (bytes_per_pixel != 1 && bytes_per_pixel != 2) {
    return InvalidArgumentError("images need 1 or 2 bytes per pixel, got " + std::to_string(bytes_per_pixel));
  }
  return WriteGreyImage(path, pixels, height, width, bytes_per_pixel == 1 ? DataType::kUint8 : DataType::kUint16);
}

}  // namespace cytonet
